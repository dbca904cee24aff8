//! Helpers shared by the fuzz targets.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Writes a correct header checksum into every 512-byte block of `data` that is not all zeros, so
/// that mutated headers get past the checksum and reach the parsing behind it. Data blocks are
/// changed too, which does not matter: their bytes are arbitrary anyway.
pub fn fix_tar_checksums(data: &mut [u8]) {
    for block in data.chunks_exact_mut(BLOCK) {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(text.as_bytes());
    }
}

/// Splits `data` into chunks whose lengths come from `seed` (cycled), so that streaming parsers
/// see their input cut at many different places.
pub fn chunks<'a>(data: &'a [u8], seed: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let want = match seed.get(i % seed.len().max(1)) {
            Some(&b) => usize::from(b) * 7 + 1,
            None => rest.len(),
        };
        let (a, b) = rest.split_at(want.min(rest.len()));
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

/// A recursive listing (relative paths, links not followed) of everything below `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A scratch folder in memory (`/dev/shm`) when the machine has one: targets that write files
/// run several times faster there.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("pgbak-fuzz")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::tempdir().expect("temporary directory")
}
