//! Extraction of tar streams below a destination: hostile names (`..`, absolute paths), links
//! that escape, and paths through links must never write outside the destination.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_copy::extract::{extract_tar, ExtractOptions};
use pgbak_copy::SyncMethod;
use pgbak_fuzz::{fix_tar_checksums, walk};
use std::path::PathBuf;
use std::sync::LazyLock;

/// A fixed place, so that seeds can name it in absolute link targets: `<base>/dest` is the
/// destination, `<base>/outside` holds a file that must stay as it is. One process at a time.
static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let base = std::env::temp_dir().join("pgbak-fuzz-extract");
    std::fs::create_dir_all(&base).expect("create the fuzz folder");
    base
});

const CANARY: &[u8] = b"must not change\n";

fn reset(base: &std::path::Path) {
    for name in ["dest", "outside"] {
        let p = base.join(name);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
    std::fs::create_dir(base.join("outside")).expect("create outside");
    std::fs::write(base.join("outside").join("canary"), CANARY).expect("write the canary");
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, body)) = input.split_first() else {
        return;
    };
    let mut data = body.to_vec();
    if flags & 1 == 1 {
        fix_tar_checksums(&mut data);
    }
    let base = BASE.as_path();
    reset(base);
    let dest = base.join("dest");
    let mut opts = ExtractOptions {
        replace_existing: flags & 2 == 2,
        sync: SyncMethod::None,
        ..ExtractOptions::default()
    };
    if flags & 4 == 4 {
        opts.tablespace_remap.insert(16385, base.join("outside"));
    }
    let _ = extract_tar(&data[..], &dest, &opts);

    // Nothing but the destination and the untouched canary next to it.
    let around = walk(base);
    let outside: Vec<_> = around
        .iter()
        .filter(|p| !p.starts_with("dest") && p.as_os_str() != "dest")
        .collect();
    assert_eq!(
        outside,
        vec![&PathBuf::from("outside"), &PathBuf::from("outside/canary")],
        "written outside the destination"
    );
    let canary = base.join("outside").join("canary");
    let meta = std::fs::symlink_metadata(&canary).expect("canary");
    assert!(meta.is_file());
    assert_eq!(std::fs::read(&canary).expect("read the canary"), CANARY);
    // The canary is not hard-linked from inside the destination either.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.nlink(), 1, "the canary was hard-linked");
});
