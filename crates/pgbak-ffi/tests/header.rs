//! The committed header `include/pgbak.h` is what cbindgen generates from the crate now.
//! `PGBAK_UPDATE_HEADER=1` (what `scripts/gen-header.sh` sets) rewrites it instead.

use std::path::Path;

#[test]
fn the_committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    let path = dir.join("include/pgbak.h");
    if std::env::var_os("PGBAK_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run scripts/gen-header.sh and commit it",
        path.display()
    );
}
