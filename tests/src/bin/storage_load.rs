//! Streams a generated object to or from a repository, opened from its URL and the standard
//! environment only, and prints what it measured as one JSON line: bytes, seconds, MiB/s and
//! the process's peak resident memory. Used by the storage tests (bounded memory, URL plus
//! environment is enough) and to measure throughput.
//!
//! Usage: `pgbak-storage-load URL put|put-new|get|stat|du|create-bucket KEY [MiB]` (`du` sums
//! the sizes of the objects under the prefix KEY, `/` for all)
//!
//! Options that have no environment variable of their own (they come from pgbak's
//! configuration) can be given as `PGBAK_LOAD_AZURE_CREDENTIAL`, `PGBAK_LOAD_AZURE_ACCOUNT`
//! and `PGBAK_LOAD_ENDPOINT_URL`.

use pgbak_storage::{open, CloudOptions, CommitMode};
use std::io::{Read, Write};
use std::time::Instant;

const BLOCK: usize = 1 << 20;

/// The bytes of block `n` of a generated object: different in every block.
fn block(n: u64, buf: &mut [u8]) {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn fail(msg: String, code: i32) -> ! {
    eprintln!("{msg}");
    std::process::exit(code)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        fail(
            "usage: pgbak-storage-load URL put|put-new|get|stat|du|create-bucket KEY [MiB]".into(),
            2,
        );
    }
    let (url, op, key) = (&args[1], args[2].as_str(), &args[3]);
    let mib: u64 = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut opts = CloudOptions::default();
    if let Ok(c) = std::env::var("PGBAK_LOAD_AZURE_CREDENTIAL") {
        opts.azure_credential = Some(c.parse().unwrap_or_else(|e: String| fail(e, 2)));
    }
    opts.azure_account = std::env::var("PGBAK_LOAD_AZURE_ACCOUNT").ok();
    opts.endpoint_url = std::env::var("PGBAK_LOAD_ENDPOINT_URL").ok();
    if op == "create-bucket" {
        let created = pgbak_storage::create_bucket(url, &opts)
            .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1));
        println!("{{\"op\":\"create-bucket\",\"created\":{created}}}");
        return;
    }
    let repo = open(url, &opts).unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1));
    let start = Instant::now();
    let mut buf = vec![0u8; BLOCK];
    let bytes = match op {
        "put" | "put-new" => {
            let mode = if op == "put" {
                CommitMode::Replace
            } else {
                CommitMode::CreateNew
            };
            let mut w = repo
                .put_with_mode(key, mode)
                .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1));
            for n in 0..mib {
                block(n, &mut buf);
                w.write_all(&buf)
                    .unwrap_or_else(|e| fail(format!("{e}"), 1));
            }
            w.commit(mode)
                .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1));
            mib * BLOCK as u64
        }
        "get" => {
            let mut r = repo
                .get(key)
                .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1));
            let mut want = vec![0u8; BLOCK];
            let mut total = 0u64;
            let mut n = 0u64;
            loop {
                let mut filled = 0;
                while filled < BLOCK {
                    let got = r
                        .read(&mut buf[filled..])
                        .unwrap_or_else(|e| fail(format!("{e}"), 1));
                    if got == 0 {
                        break;
                    }
                    filled += got;
                }
                if filled == 0 {
                    break;
                }
                block(n, &mut want);
                if buf[..filled] != want[..filled] {
                    fail(format!("block {n} differs from what was written"), 3);
                }
                total += filled as u64;
                n += 1;
                if filled < BLOCK {
                    break;
                }
            }
            total
        }
        // The total size of the objects whose key starts with KEY ("" for all).
        "du" => repo
            .list(if key == "/" { "" } else { key })
            .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1))
            .iter()
            .map(|m| m.size)
            .sum(),
        "stat" => repo
            .stat(key)
            .unwrap_or_else(|e| fail(format!("{e} [{:?}]", e.kind()), 1))
            .map(|m| m.size)
            .unwrap_or_else(|| fail(format!("{key}: no such object"), 4)),
        _ => fail(format!("unknown operation {op}"), 2),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"op\":\"{op}\",\"repository\":{:?},\"bytes\":{bytes},\"seconds\":{secs:.3},\"mib_per_s\":{:.1},\"peak_rss_kib\":{}}}",
        repo.describe(),
        bytes as f64 / (1 << 20) as f64 / secs.max(1e-9),
        peak_rss_kib()
    );
}
