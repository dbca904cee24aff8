//! Compression and decompression throughput of every codec at the level a backup uses, on 64 MiB
//! of table pages shaped like a real PostgreSQL table (`pgbak_benches::pg_page_data`).
//!
//! Throughput is counted in uncompressed bytes, both ways. bzip2 and xz run on the first 16 MiB
//! only: at 64 MiB each of their samples would take seconds, and the rate does not change.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pgbak_compress::{Codec, Compression, Compressor, Level};

const DATA_SIZE: usize = 64 << 20;
const SLOW_CODEC_DATA_SIZE: usize = 16 << 20;

/// Reads are made in pieces this large, as a restore writing files would.
const READ_CHUNK: usize = 1 << 20;

/// The codecs and levels a base backup would use (the fastest level of each), with a name for
/// the report; zstd also on two background threads.
fn backup_codecs() -> Vec<(String, Codec)> {
    let mut codecs: Vec<(String, Codec)> = Compression::ALL
        .into_iter()
        .map(|c| {
            let codec = Codec::new(c, Some(Level::Low)).expect("low is valid for every codec");
            (c.name().to_string(), codec)
        })
        .collect();
    let zstd = Codec::new(Compression::Zstd, Some(Level::Low)).expect("zstd low");
    codecs.push(("zstd-2-workers".to_string(), zstd.with_workers(2)));
    codecs
}

/// Long enough for ten samples of the slow codecs, short for the others.
fn measurement_time(codec: &Codec) -> Duration {
    match codec.compression() {
        Compression::Bzip2 | Compression::Xz => Duration::from_secs(14),
        _ => Duration::from_secs(4),
    }
}

fn input_for(codec: &Codec, data: &[u8]) -> usize {
    match codec.compression() {
        Compression::Bzip2 | Compression::Xz => SLOW_CODEC_DATA_SIZE.min(data.len()),
        _ => data.len(),
    }
}

fn compress(codec: &Codec, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut enc = codec.encoder(Box::new(&mut *out)).expect("encoder");
    enc.write_all(data).expect("compress");
    enc.finish().expect("finish");
}

fn decompress(codec: &Codec, stored: &[u8], chunk: &mut [u8]) -> usize {
    let mut dec = codec.decoder(Box::new(stored)).expect("decoder");
    let mut total = 0;
    loop {
        match dec.read(chunk).expect("decompress") {
            0 => return total,
            n => total += n,
        }
    }
}

fn codecs(c: &mut Criterion) {
    let data = pgbak_benches::pg_page_data(DATA_SIZE, 42);
    let mut out = Vec::with_capacity(DATA_SIZE + DATA_SIZE / 8);
    let mut chunk = vec![0u8; READ_CHUNK];

    let mut group = c.benchmark_group("compress");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (name, codec) in backup_codecs() {
        let input = &data[..input_for(&codec, &data)];
        compress(&codec, input, &mut out);
        eprintln!(
            "{name}: level {}, {} -> {} bytes, ratio {:.2}",
            codec.level(),
            input.len(),
            out.len(),
            input.len() as f64 / out.len() as f64
        );
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.measurement_time(measurement_time(&codec));
        group.bench_function(&name, |b| {
            b.iter(|| compress(&codec, black_box(input), &mut out))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decompress");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (name, codec) in backup_codecs() {
        let input = &data[..input_for(&codec, &data)];
        let mut stored = Vec::new();
        compress(&codec, input, &mut stored);
        assert_eq!(decompress(&codec, &stored, &mut chunk), input.len());
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.measurement_time(measurement_time(&codec));
        group.bench_function(&name, |b| {
            b.iter(|| decompress(&codec, black_box(&stored), &mut chunk))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = codecs
}
criterion_main!(benches);
