//! The GPG stage against real keys made by `gpg` in a throwaway GnuPG home: round trips alone and
//! under compression, interoperability with the `gpg` command in both directions, and every
//! failure (wrong passphrase, no secret key, damaged or truncated ciphertext, an abandoned writer,
//! an unknown recipient).

#![cfg(feature = "gpg")]

use pgbak_compress::gpg::{GpgEncryptor, PassphraseSource};
use pgbak_compress::pipeline::{ReadPipeline, WritePipeline};
use pgbak_compress::{Codec, Compression, Encryptor};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

const PASSPHRASE: &str = "correct horse battery staple";

/// A GnuPG home with two keys: `backup@pgbak.test` (with [`PASSPHRASE`]) and
/// `other@pgbak.test` (no passphrase; its secret key is then deleted). Made once per test binary;
/// its agent is left running for the other tests.
struct Keys {
    home: PathBuf,
    _dir: tempdir::Guard,
}

mod tempdir {
    /// Removes the folder at the end (the agent's sockets go with it).
    pub struct Guard(pub std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::process::Command::new("gpgconf")
                .env("GNUPGHOME", &self.0)
                .args(["--kill", "gpg-agent"])
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--no-tty"])
        .args(args)
        .output()
        .expect("run gpg")
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // Short: the agent's socket path must fit in 108 bytes.
        let home = PathBuf::from(format!("/tmp/pgbak-gpg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let guard = tempdir::Guard(home.clone());
        // No passphrase cache: a wrong passphrase must fail even after a right one.
        std::fs::write(
            home.join("gpg-agent.conf"),
            "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n",
        )
        .unwrap();
        for (uid, pass) in [("backup@pgbak.test", PASSPHRASE), ("other@pgbak.test", "")] {
            let out = gpg(
                &home,
                &[
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    pass,
                    "--quick-generate-key",
                    uid,
                    "future-default",
                    "default",
                    "never",
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // `other` keeps only its public key.
        let fpr = fingerprint(&home, "other@pgbak.test");
        let out = gpg(&home, &["--yes", "--delete-secret-keys", &fpr]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Keys { home, _dir: guard }
    })
}

fn fingerprint(home: &Path, uid: &str) -> String {
    let out = gpg(home, &["--with-colons", "--list-keys", uid]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string()
}

fn passphrase(text: &'static str) -> PassphraseSource {
    Arc::new(move || Ok(text.as_bytes().to_vec()))
}

fn stage(recipient: &str, pass: &'static str) -> GpgEncryptor {
    GpgEncryptor::new(recipient)
        .home(&keys().home)
        .passphrase(passphrase(pass))
}

fn sample(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                b'a'
            } else {
                x as u8
            }
        })
        .collect()
}

fn encrypt(e: &GpgEncryptor, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = e.encrypt(Box::new(&mut out)).unwrap();
    // Odd sizes, so that chunks and writes never line up.
    for piece in data.chunks(70_001) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap();
    out
}

fn refused(e: &GpgEncryptor, data: &[u8], what: &str) -> io::Error {
    match decrypt(e, data) {
        Ok(plain) => panic!("{what}: decrypted to {} bytes", plain.len()),
        Err(err) => err,
    }
}

fn decrypt(e: &GpgEncryptor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = e.decrypt(Box::new(data))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn round_trips_of_every_size() {
    let e = stage("backup@pgbak.test", PASSPHRASE);
    e.check().unwrap();
    for len in [0, 1, 4095, 256 << 10, (3 << 20) + 17] {
        let data = sample(len);
        let sealed = encrypt(&e, &data);
        assert_ne!(
            sealed.get(..64),
            data.get(..64),
            "ciphertext of {len} bytes"
        );
        assert_eq!(decrypt(&e, &sealed).unwrap(), data, "{len} bytes");
    }
}

#[test]
fn the_gpg_command_reads_what_the_stage_writes_and_the_other_way_round() {
    let e = stage("backup@pgbak.test", PASSPHRASE);
    let data = sample(1 << 20);
    let sealed = encrypt(&e, &data);
    // An OpenPGP packet stream: a public-key encrypted session key packet first.
    assert_eq!(sealed[0] & 0x80, 0x80, "not an OpenPGP packet");
    let out = gpg_stdin(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
            "--decrypt",
        ],
        &sealed,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "gpg --decrypt gave other bytes");

    let out = gpg_stdin(
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "--recipient",
            "backup@pgbak.test",
        ],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(decrypt(&e, &out.stdout).unwrap() == data);
}

fn gpg_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new("gpg")
        .env("GNUPGHOME", &keys().home)
        .args(["--batch", "--quiet", "--no-tty"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    out
}

#[test]
fn under_compression_in_the_pipeline() {
    let e: Arc<dyn Encryptor> = Arc::new(stage("backup@pgbak.test", PASSPHRASE));
    let data = sample(2 << 20);
    let codec = Codec::new(Compression::Zstd, None).unwrap();
    let mut w = WritePipeline::builder(&codec)
        .encryptor(Some(e.clone()))
        .build(Vec::new())
        .unwrap();
    w.write_all(&data).unwrap();
    let (stored, stats) = w.finish().unwrap();
    assert_eq!(stats.plain.bytes, data.len() as u64);
    assert_eq!(stats.stored.bytes, stored.len() as u64);
    let mut r = ReadPipeline::builder()
        .encryptor(Some(e))
        .open(&stored[..])
        .unwrap();
    assert!(r.encrypted());
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    assert!(back == data);
}

#[test]
fn failures_are_errors_never_short_reads() {
    let e = stage("backup@pgbak.test", PASSPHRASE);
    let data = sample(600 << 10);
    let sealed = encrypt(&e, &data);

    // A wrong passphrase.
    let wrong = stage("backup@pgbak.test", "not it");
    let err = refused(&wrong, &sealed, "a wrong passphrase");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");

    // Encrypted to a key whose secret part is not here.
    let other = stage("other@pgbak.test", "");
    let to_other = encrypt(&other, &data);
    let err = refused(&e, &to_other, "no secret key");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");

    // One byte changed in the middle, or the end cut off.
    let mut damaged = sealed.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    refused(&e, &damaged, "a damaged message");
    refused(&e, &sealed[..sealed.len() - 100], "a truncated message");
    refused(&e, b"not an OpenPGP message at all", "garbage");

    // A writer dropped before finish leaves something that does not decrypt.
    let mut out = Vec::new();
    {
        let mut w = e.encrypt(Box::new(&mut out)).unwrap();
        w.write_all(&data).unwrap();
    }
    refused(&e, &out, "an abandoned stream");

    // No key for the recipient: a clear error before anything is written.
    let nobody = stage("nobody@pgbak.test", PASSPHRASE);
    let err = nobody.check().unwrap_err();
    assert!(err.to_string().contains("nobody@pgbak.test"), "{err}");
    let mut sink = Vec::new();
    assert!(nobody.encrypt(Box::new(&mut sink)).is_err());
    assert!(sink.is_empty());
}
