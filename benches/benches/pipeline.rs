//! What the stream pipeline costs over calling a codec directly, on 256 MiB of table pages shaped
//! like a real PostgreSQL table (`pgbak_benches::pg_page_data`), for the codecs a backup uses
//! most: zstd and lz4 at their fastest levels, and none.
//!
//! Writing: the codec alone; the codec with the CRC-32C written out at the call site, as the WAL
//! archive did; the pipeline counting bytes only; the pipeline with a CRC-32C of the plain side.
//! Reading: the decoder alone, the decoder with a hand-written CRC-32C, the pipeline counting
//! bytes, and the pipeline checking the plain bytes against a recorded CRC-32C and size.
//! Throughput is counted in plain bytes; the caller moves 1 MiB pieces, as the backup writer does.
//!
//! Every stage runs on the calling thread, so the clock is that thread's CPU time
//! ([`ThreadCpuTime`]): what the pipeline costs, unaffected by other work on a shared machine.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pgbak_compress::pipeline::{Digests, ReadPipeline, WritePipeline};
use pgbak_compress::{auto_decoder, Codec, Compression, Compressor, Level};

const DATA_SIZE: usize = 256 << 20;
const PIECE: usize = 1 << 20;

/// Criterion's clock: CPU time of the benchmark thread, reported like wall time.
struct ThreadCpuTime;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        pgbak_benches::thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        pgbak_benches::thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, formatted as wall time is.
        WALL.formatter()
    }
}

fn codecs() -> [Codec; 3] {
    [Compression::Zstd, Compression::Lz4, Compression::None]
        .map(|c| Codec::new(c, Some(Level::Low)).expect("low is valid for every codec"))
}

fn codec_write(codec: &Codec, data: &[u8], out: &mut Vec<u8>, crc: bool) -> u32 {
    out.clear();
    let mut sum = 0;
    let mut enc = codec.encoder(Box::new(&mut *out)).expect("encoder");
    for piece in data.chunks(PIECE) {
        if crc {
            sum = crc32c::crc32c_append(sum, piece);
        }
        enc.write_all(piece).expect("compress");
    }
    enc.finish().expect("finish");
    sum
}

fn pipeline_write(codec: &Codec, data: &[u8], out: &mut Vec<u8>, plain: Digests) -> u64 {
    out.clear();
    let mut w = WritePipeline::builder(codec)
        .measure_plain(plain)
        .build(&mut *out)
        .expect("pipeline");
    for piece in data.chunks(PIECE) {
        w.write_all(piece).expect("compress");
    }
    w.finish().expect("finish").1.stored.bytes
}

fn drain(r: &mut dyn Read, chunk: &mut [u8], crc: bool) -> (u64, u32) {
    let (mut total, mut sum) = (0u64, 0u32);
    loop {
        match r.read(chunk).expect("decompress") {
            0 => return (total, sum),
            n => {
                if crc {
                    sum = crc32c::crc32c_append(sum, &chunk[..n]);
                }
                total += n as u64;
            }
        }
    }
}

fn pipeline(c: &mut Criterion<ThreadCpuTime>) {
    let data = pgbak_benches::pg_page_data(DATA_SIZE, 42);
    let plain_crc = crc32c::crc32c(&data);
    let mut out = Vec::with_capacity(DATA_SIZE + DATA_SIZE / 8);
    let mut chunk = vec![0u8; PIECE];

    let mut group = c.benchmark_group("pipeline-write");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(DATA_SIZE as u64));
    for codec in codecs() {
        let name = codec.compression().name();
        group.bench_function(format!("{name}/codec"), |b| {
            b.iter(|| codec_write(&codec, black_box(&data), &mut out, false))
        });
        group.bench_function(format!("{name}/codec+crc"), |b| {
            b.iter(|| codec_write(&codec, black_box(&data), &mut out, true))
        });
        group.bench_function(format!("{name}/pipeline"), |b| {
            b.iter(|| pipeline_write(&codec, black_box(&data), &mut out, Digests::NONE))
        });
        group.bench_function(format!("{name}/pipeline+crc"), |b| {
            b.iter(|| pipeline_write(&codec, black_box(&data), &mut out, Digests::CRC32C))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pipeline-read");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(DATA_SIZE as u64));
    for codec in codecs() {
        let name = codec.compression().name();
        let mut stored = Vec::new();
        codec_write(&codec, &data, &mut stored, false);
        eprintln!(
            "{name}: {} -> {} bytes, ratio {:.2}",
            data.len(),
            stored.len(),
            data.len() as f64 / stored.len() as f64
        );
        let stored = &stored[..];
        group.bench_function(format!("{name}/decoder"), |b| {
            b.iter(|| {
                let (_, mut r) = auto_decoder(Box::new(black_box(stored))).expect("decoder");
                drain(&mut r, &mut chunk, false)
            })
        });
        group.bench_function(format!("{name}/decoder+crc"), |b| {
            b.iter(|| {
                let (_, mut r) = auto_decoder(Box::new(black_box(stored))).expect("decoder");
                let (n, sum) = drain(&mut r, &mut chunk, true);
                assert!(n == DATA_SIZE as u64 && sum == plain_crc);
            })
        });
        group.bench_function(format!("{name}/pipeline"), |b| {
            b.iter(|| {
                let mut r = ReadPipeline::builder()
                    .open(black_box(stored))
                    .expect("pipeline");
                drain(&mut r, &mut chunk, false)
            })
        });
        group.bench_function(format!("{name}/pipeline+expect"), |b| {
            b.iter(|| {
                let mut r = ReadPipeline::builder()
                    .expect(plain_crc, DATA_SIZE as u64)
                    .open(black_box(stored))
                    .expect("pipeline");
                drain(&mut r, &mut chunk, false)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .warm_up_time(Duration::from_secs(1));
    targets = pipeline
}
criterion_main!(benches);
