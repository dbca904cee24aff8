//! Cost of one `archive-wal` of a 16 MiB segment (the library path the command takes: validate,
//! compress, write, fsync, index), per WAL compression.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pgbak_compress::{Codec, Compression, Level};
use pgbak_core::wal::WalArchive;
use pgbak_storage::LocalStorage;
use std::cell::Cell;

const SEG: u64 = 16 << 20;

/// Writes segment number `segno` of timeline 1 into `dir`, with a header that matches its name.
fn write_segment(dir: &std::path::Path, template: &[u8], segno: u64) -> std::path::PathBuf {
    let name = format!("{:08X}{:08X}{:08X}", 1, segno / 256, segno % 256);
    let mut data = template.to_vec();
    data[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    data[2..4].copy_from_slice(&0x0002u16.to_le_bytes());
    data[4..8].copy_from_slice(&1u32.to_le_bytes());
    data[8..16].copy_from_slice(&(segno * SEG).to_le_bytes());
    data[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write segment");
    path
}

fn archive_wal(c: &mut Criterion) {
    let template = pgbak_benches::wal_segment_data(7);
    assert_eq!(template.len() as u64, SEG);
    let mut group = c.benchmark_group("archive-wal 16MiB");
    group.sample_size(10).throughput(Throughput::Bytes(SEG));
    for (compression, level) in [
        (Compression::None, None),
        (Compression::Zstd, Some(Level::Low)),
        (Compression::Lz4, Some(Level::Low)),
        (Compression::Gzip, Some(Level::Low)),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("pg_wal");
        std::fs::create_dir(&src).expect("src dir");
        let archive = WalArchive::new(
            "bench",
            std::sync::Arc::new(LocalStorage::new(dir.path().join("wals"))),
            std::sync::Arc::new(LocalStorage::new(dir.path().join("errors"))),
            Codec::new(compression, level).expect("codec"),
        );
        let next = Cell::new(1u64);
        group.bench_function(compression.name(), |b| {
            b.iter_batched(
                || {
                    let n = next.get();
                    next.set(n + 1);
                    write_segment(&src, &template, n)
                },
                |path| archive.archive_file(&path).expect("archive"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, archive_wal);
criterion_main!(benches);
