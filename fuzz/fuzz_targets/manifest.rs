//! `backup_manifest` files (PostgreSQL's JSON layout, versions 1 and 2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::BackupManifest;

fuzz_target!(|data: &[u8]| {
    let _ = BackupManifest::computed_checksum(data);
    let Ok(manifest) = BackupManifest::parse(data) else {
        return;
    };
    for f in &manifest.files {
        assert_eq!(f.checksum.len(), f.algorithm.len());
    }
    // Rendered, it parses back to the same manifest, with a checksum that matches its text.
    let rendered = manifest.render();
    let back = BackupManifest::parse(&rendered).unwrap_or_else(|e| {
        panic!(
            "rendered manifest does not parse: {e}\n{}",
            String::from_utf8_lossy(&rendered)
        )
    });
    assert_eq!(
        BackupManifest::computed_checksum(&rendered).expect("checksum of a rendered manifest"),
        back.manifest_checksum
    );
    let expected = BackupManifest {
        manifest_checksum: back.manifest_checksum.clone(),
        ..manifest
    };
    assert_eq!(back, expected);
});
