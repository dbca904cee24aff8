#[path = "../../../benches/src/lib.rs"]
#[allow(dead_code)]
mod gen;
use pgbak_compress::*;
use std::io::{Read, Write};
use std::time::Instant;
fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    let data = gen::pg_page_data(64 << 20, 42);
    eprintln!("gen pages {:?}", t.elapsed()); if std::env::var("DUMP").is_ok() { std::fs::write("/tmp/pages.bin", &data).unwrap(); return; }
    let t = Instant::now();
    let wal = gen::wal_segment_data(7);
    eprintln!("gen wal {:?}", t.elapsed());
    for (name, d) in [("pages", &data), ("wal", &wal)] {
        for c in Compression::ALL {
            if !which.is_empty() && !which.contains(&c.name().to_string()) { continue; }
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let input = if matches!(c, Compression::Bzip2 | Compression::Xz) { &d[..d.len().min(16 << 20)] } else { &d[..] };
            let mut out = Vec::with_capacity(input.len());
            let t = Instant::now();
            let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
            enc.write_all(input).unwrap();
            enc.finish().unwrap();
            let ct = t.elapsed().as_secs_f64();
            let mut buf = vec![0u8; 1 << 20];
            let t = Instant::now();
            let mut dec = codec.decoder(Box::new(&out[..])).unwrap();
            let mut total = 0;
            loop { let n = dec.read(&mut buf).unwrap(); if n == 0 { break } total += n; }
            let dt = t.elapsed().as_secs_f64();
            assert_eq!(total, input.len());
            let mb = input.len() as f64 / 1e6;
            println!("{name:5} {:7} ratio {:5.2}  compress {:8.1} MB/s  decompress {:8.1} MB/s", c.name(), input.len() as f64 / out.len() as f64, mb / ct, mb / dt);
        }
    }
}
