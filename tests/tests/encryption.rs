//! Encryption with real keys made by `gpg` in a throwaway GnuPG home: the GPG stage alone
//! (round trips, interoperability with the `gpg` command both ways, every failure: wrong
//! passphrase, no secret key, damaged, truncated or abandoned streams, unknown recipient), under
//! compression in the pipeline, and the WAL archive storing encrypted files and reading them
//! back, next to clear ones.

use pgbak_compress::gpg::{GpgEncryptor, PassphraseSource};
use pgbak_compress::pipeline::{ReadPipeline, WritePipeline};
use pgbak_compress::{Codec, Compression, Encryptor};
use pgbak_tests::gpg::{TestKeys, BACKUP_KEY, OTHER_KEY, PASSPHRASE};
use std::io::{self, Read, Write};
use std::sync::Arc;

fn passphrase(text: &'static str) -> PassphraseSource {
    Arc::new(move || Ok(text.as_bytes().to_vec()))
}

fn stage(recipient: &str, pass: &'static str) -> GpgEncryptor {
    GpgEncryptor::new(recipient)
        .home(&TestKeys::get().home)
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
    let e = stage(BACKUP_KEY, PASSPHRASE);
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
    let e = stage(BACKUP_KEY, PASSPHRASE);
    let data = sample(1 << 20);
    let sealed = encrypt(&e, &data);
    // An OpenPGP packet stream: a public-key encrypted session key packet first.
    assert_eq!(sealed[0] & 0x80, 0x80, "not an OpenPGP packet");
    let keys = TestKeys::get();
    let out = keys.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
            "--decrypt",
        ],
        Some(&sealed),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "gpg --decrypt gave other bytes");

    let out = keys.gpg(
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "--recipient",
            BACKUP_KEY,
        ],
        Some(&data),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(decrypt(&e, &out.stdout).unwrap() == data);
}

#[test]
fn under_compression_in_the_pipeline() {
    let e: Arc<dyn Encryptor> = Arc::new(stage(BACKUP_KEY, PASSPHRASE));
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
    let e = stage(BACKUP_KEY, PASSPHRASE);
    let data = sample(600 << 10);
    let sealed = encrypt(&e, &data);

    // A wrong passphrase.
    let wrong = stage(BACKUP_KEY, "not it");
    let err = refused(&wrong, &sealed, "a wrong passphrase");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");

    // Encrypted to a key whose secret part is not here.
    let other = stage(OTHER_KEY, "");
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

/// The WAL archive with an encryptor: what it stores is an OpenPGP message that `gpg
/// --decrypt` turns back into the file compressed; it reads back the original bytes, and a clear
/// file archived before encryption was turned on still reads back too.
#[test]
fn the_wal_archive_stores_encrypted_files_and_reads_them_back() {
    use pgbak_repo::wal::WalArchive;
    use pgbak_storage::{LocalStorage, StorageBackend};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StorageBackend> = Arc::new(LocalStorage::new(dir.path().join("wals")));
    let errors: Arc<dyn StorageBackend> = Arc::new(LocalStorage::new(dir.path().join("errors")));
    let codec = Codec::new(Compression::Zstd, None).unwrap();
    let clear = WalArchive::new("main", store.clone(), errors.clone(), codec);
    let e: Arc<dyn Encryptor> = Arc::new(stage(BACKUP_KEY, PASSPHRASE));
    let sealed = WalArchive::new("main", store.clone(), errors, codec).with_encryptor(Some(e));

    let history = |tli: u32| {
        let name = format!("{tli:08X}.history");
        let text = format!("{}\t0/3000000\tno recovery target specified\n", tli - 1);
        let path = dir.path().join(&name);
        std::fs::write(&path, &text).unwrap();
        (name, path, text)
    };
    let (old_name, old_path, old_text) = history(2);
    clear.archive_file(&old_path).unwrap();
    let (name, path, text) = history(3);
    sealed.archive_file(&path).unwrap();

    let key = WalArchive::key_of(&name).unwrap();
    let mut stored = Vec::new();
    store.get(&key).unwrap().read_to_end(&mut stored).unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("no recovery target"));
    let keys = TestKeys::get();
    let out = keys.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
            "--decrypt",
        ],
        Some(&stored),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(zstd::decode_all(&out.stdout[..]).unwrap(), text.as_bytes());

    for (n, t) in [(&name, &text), (&old_name, &old_text)] {
        let mut back = Vec::new();
        sealed.fetch_to(n, &mut back, "test").unwrap();
        assert_eq!(back, t.as_bytes(), "{n}");
    }
    // Without the encryptor, the encrypted file is refused, never handed over as it is.
    let mut back = Vec::new();
    assert!(clear.fetch_to(&name, &mut back, "test").is_err());
    assert!(back.is_empty());
    // Archiving the same file again is recognised as identical through the encryption.
    assert!(sealed.archive_file(&path).is_ok());
}
