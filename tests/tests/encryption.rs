//! Encryption with real keys made by `gpg` in a throwaway GnuPG home: the GPG stage alone
//! (round trips, interoperability with the `gpg` command both ways, every failure: wrong
//! passphrase, no secret key, damaged, truncated or abandoned streams, unknown recipient), under
//! compression in the pipeline, the WAL archive storing encrypted files and reading them back
//! next to clear ones (and its rebuilt index telling them apart); then end to end with real
//! clusters: point-in-time recoveries of encrypted backups and WAL on local disk (with a
//! tablespace) and in every cloud emulator, over SSH (wal-archive, remote recovery, wal-restore),
//! with WAL from receive-wal and cron's incoming sweep, generate-manifest and verify-backup on an
//! encrypted backup, a backup encrypted after the fact by the `gpg` command, and what is refused.

use pgbak_compress::gpg::{GpgEncryptor, PassphraseSource};
use pgbak_compress::pipeline::{ReadPipeline, WritePipeline};
use pgbak_compress::{Codec, Compression, Encryptor};
use pgbak_tests::gpg::{TestKeys, BACKUP_KEY, OTHER_KEY, PASSPHRASE};
use pgbak_tests::{Cluster, ClusterOptions, PgbakEnv};
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

    // A rebuilt index tells both apart: compression inside the encryption, and the key the
    // message names (the long ID of the recipient's encryption subkey).
    let report = sealed.rebuild_index().unwrap();
    assert_eq!((report.entries, report.checksummed), (2, 2), "{report:?}");
    let listing = keys.gpg_ok(&["--list-keys", "--with-colons", BACKUP_KEY]);
    let subkey = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == "sub" && f[11].contains('e'))
        .map(|f| f[4].to_string())
        .expect("an encryption subkey");
    let entries = sealed.index_entries().unwrap();
    let of = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    let (new, old) = (of(&name), of(&old_name));
    assert_eq!(
        (
            new.compression.as_str(),
            new.encryption.as_deref(),
            new.key_id.as_deref()
        ),
        ("zstd", Some("gpg"), Some(subkey.as_str())),
        "{new:?}"
    );
    assert_eq!(
        (
            old.compression.as_str(),
            old.encryption.as_deref(),
            old.key_id.as_deref()
        ),
        ("zstd", None, None),
        "{old:?}"
    );
    assert_eq!(new.size, Some(text.len() as u64));
}

/// The server lines of an encrypting configuration, with a passphrase command that prints the
/// passphrase from a private file of `dir` (so that it is on no command line).
fn encrypted_lines(dir: &std::path::Path, key: &str, pass: &str) -> String {
    let file = dir.join(format!("passphrase-{}", key.replace('@', "-")));
    std::fs::write(&file, format!("{pass}\n")).unwrap();
    pgbak_tests::give_to_owner(&file);
    format!(
        "compression = zstd\nbackup_compression = zstd\nencryption = gpg\nencryption_key_id = {key}\n\
         encryption_passphrase_command = cat {}\n",
        file.display()
    )
}

fn ids(c: &Cluster) -> String {
    c.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

fn insert(c: &Cluster, from: i64, to: i64) {
    c.psql(&format!(
        "INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

/// Decrypts `stored` with the `gpg` command and the key alone.
fn gpg_decrypt(keys: &TestKeys, stored: &[u8]) -> Vec<u8> {
    let out = keys.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
            "--decrypt",
        ],
        Some(stored),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A zstd backup and the WAL encrypted on local disk: both are OpenPGP messages that `gpg
/// --decrypt` opens with the key alone, the backup records its encryption, and a
/// point-in-time recovery gives back exactly the rows of the moment. Then what is refused: a
/// plain backup with encryption on, and an archive-wal to a key that is not there.
#[test]
fn point_in_time_recovery_of_an_encrypted_backup_and_wal_on_local_disk() {
    let keys = TestKeys::for_owner();
    let (k, v) = keys.env();
    let genv = [(k.as_str(), v.as_str())];
    let env = PgbakEnv::new();
    let extra = encrypted_lines(env.dir.path(), BACKUP_KEY, PASSPHRASE);
    let cluster = env.cluster(
        &extra,
        ClusterOptions {
            env: vec![keys.env()],
            ..Default::default()
        },
    );
    let run = |args: &[&str]| env.run_plain_env(args, &genv);
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 3000);
    // A tablespace: its stream is encrypted too.
    let spaces = pgbak_tests::postgres_tempdir();
    cluster.psql(&format!(
        "CREATE TABLESPACE ts LOCATION '{}'",
        spaces.path().display()
    ));
    cluster.psql("CREATE TABLE in_ts TABLESPACE ts AS SELECT g FROM generate_series(1, 5000) g");
    let ts_oid = cluster.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'");
    let out = run(&[
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ])
    .ok();
    let backup = out.json();
    assert_eq!(backup["status"], "DONE", "{}", out.stdout);
    let id = backup["backup_id"].as_str().unwrap().to_string();
    let shown = run(&["-f", "json", "show-backup", "main", &id]).ok().json();
    assert_eq!(shown["encryption"], "gpg", "{shown}");
    assert_eq!(shown["encryption_key_id"], BACKUP_KEY, "{shown}");
    let base = env
        .server_dir()
        .join("base")
        .join(&id)
        .join("data/base.tar.zst.gpg");
    let stored = std::fs::read(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let tar = zstd::decode_all(&gpg_decrypt(keys, &stored)[..]).unwrap();
    assert_eq!(&tar[257..262], b"ustar", "base.tar inside");
    let ts_stream = base.with_file_name(format!("{ts_oid}.tar.zst.gpg"));
    let ts_tar =
        zstd::decode_all(&gpg_decrypt(keys, &std::fs::read(&ts_stream).unwrap())[..]).unwrap();
    assert_eq!(&ts_tar[257..262], b"ustar", "{ts_oid}.tar inside");

    insert(&cluster, 3001, 3100);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(std::time::Duration::from_millis(20));
    insert(&cluster, 3101, 3200);
    cluster.psql("DELETE FROM t WHERE id <= 100");
    run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ])
    .ok();

    // Every archived WAL file is an OpenPGP message around a zstd frame.
    let names = env.archived_wal_files();
    let segment = names.iter().find(|n| n.len() == 24).expect("a segment");
    let path = env
        .server_dir()
        .join("wals")
        .join(&segment[..16])
        .join(segment);
    let plain = zstd::decode_all(&gpg_decrypt(keys, &std::fs::read(&path).unwrap())[..]).unwrap();
    assert_eq!(plain.len(), 16 << 20);
    let back = env.restore_dir("segment");
    run(&["get-wal", "main", segment, back.to_str().unwrap()]).ok();
    assert!(
        std::fs::read(&back).unwrap() == plain,
        "get-wal gave other bytes"
    );
    // The index says it, as Barman's xlog.db does (fifth column), with the key.
    let index = env.index_text();
    let line = index
        .lines()
        .find(|l| l.starts_with(segment.as_str()))
        .unwrap_or_else(|| panic!("{segment} not indexed: {index}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!((cols[3], cols[4]), ("zstd", "gpg"), "{line}");
    assert!(line.ends_with(&format!("\tkey={BACKUP_KEY}")), "{line}");

    let dest = env.restore_dir("by_time");
    let moved = pgbak_tests::postgres_tempdir();
    let relocate = format!("ts:{}", moved.path().join("ts").display());
    run(&[
        "recover",
        "main",
        &id,
        dest.to_str().unwrap(),
        "--target-time",
        &target_time,
        "--target-action",
        "promote",
        "--tablespace",
        &relocate,
        "--jobs",
        "3",
    ])
    .ok();
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for(
        "SELECT pg_is_in_recovery()",
        "f",
        std::time::Duration::from_secs(180),
    );
    assert_eq!(ids(&restored), at_time, "recovery to {target_time}");
    assert_eq!(restored.psql("SELECT count(*) FROM in_ts"), "5000");
    drop(restored);
    let out = run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(&["check", "main"]);
    assert!(
        out.stdout.lines().any(|l| l.trim() == "encryption: OK"),
        "{}",
        out.stdout
    );

    // One byte changed in the encrypted backup: verify-backup and recover fail naming it, and
    // recover leaves nothing that PostgreSQL would start as a finished recovery.
    let mut damaged = stored.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    std::fs::write(&base, &damaged).unwrap();
    let out = run(&["verify-backup", "main", &id]);
    assert_ne!(out.code, 0, "{out:?}");
    let dest = env.restore_dir("damaged");
    let elsewhere = format!("ts:{}", moved.path().join("ts2").display());
    let out = run(&[
        "recover",
        "main",
        &id,
        dest.to_str().unwrap(),
        "--tablespace",
        &elsewhere,
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("base.tar.zst.gpg"), "{}", out.stderr);
    for name in [
        "recovery.signal",
        "standby.signal",
        "postgresql.auto.conf",
        "backup_label",
    ] {
        assert!(!dest.join(name).exists(), "recover left {name}");
    }
    std::fs::write(&base, &stored).unwrap();

    // A plain backup would be stored in clear: refused before anything is written.
    env.write_config(
        &cluster,
        &format!("{extra}backup_compression = none\nbackup_compression_format = plain\n"),
    );
    let out = run(&["backup", "main"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("encryption = gpg applies to tar backups only"),
        "{}",
        out.stderr
    );
    assert_eq!(env.backups().len(), 1);

    // A recipient key that is not there: archive-wal fails, PostgreSQL keeps the segment.
    let other = PgbakEnv::new();
    other.write_config(
        &cluster,
        &encrypted_lines(other.dir.path(), "nobody@pgbak.test", ""),
    );
    let copy = other.dir.path().join(segment);
    std::fs::write(&copy, &plain).unwrap();
    pgbak_tests::give_to_owner(&copy);
    let out = other.run_plain_env(&["archive-wal", "main", copy.to_str().unwrap()], &genv);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("nobody@pgbak.test"), "{}", out.stderr);
    assert!(other.archived_wal_files().is_empty());
    let out = other.run_plain_env(&["check", "main"], &genv);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim().starts_with("encryption: "))
        .unwrap_or_else(|| panic!("no encryption line: {}", out.stdout));
    assert!(
        line.contains("FAILED") && line.contains("nobody@pgbak.test"),
        "{line}"
    );
}

pgbak_tests::on_every_cloud!(point_in_time_recovery_of_an_encrypted_backup_and_wal_in_the_cloud);

/// The same in each object store's emulator: an encrypted zstd backup and encrypted WAL in the
/// bucket or container, restored to a time with WAL through `get-wal` (PostgreSQL's
/// restore_command decrypts as pgbak does).
fn point_in_time_recovery_of_an_encrypted_backup_and_wal_in_the_cloud(
    kind: pgbak_tests::emulators::Kind,
) {
    use pgbak_tests::cloud::CloudEnv;
    use pgbak_tests::emulators::Emulator;
    let keys = TestKeys::for_owner();
    let emu = Emulator::shared(kind);
    let mut env = CloudEnv::new(emu);
    env.env.push(keys.env());
    let extra = encrypted_lines(env.pgbak.dir.path(), BACKUP_KEY, PASSPHRASE);
    let cluster = env.cluster(&extra);
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 2000);
    let backup = env.backup();
    let id = backup["backup_id"].as_str().unwrap().to_string();
    let mut stored = Vec::new();
    env.store("base")
        .get(&format!("{id}/data/base.tar.zst.gpg"))
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    let tar = zstd::decode_all(&gpg_decrypt(keys, &stored)[..]).unwrap();
    assert_eq!(&tar[257..262], b"ustar");

    insert(&cluster, 2001, 2100);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(std::time::Duration::from_millis(20));
    insert(&cluster, 2101, 2200);
    env.switch_wal_archived();

    let r = env.recover_and_start(
        &id,
        "by_time",
        &[
            "--target-time",
            &target_time,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_time, "recovery to {target_time}");
}

/// A WAL file in Barman's layout (compressed, then encrypted by the `gpg` command, under its
/// bare name) restores with pgbak; a failing passphrase command is a clear error that names the
/// command's failure and shows no secret; get-wal then writes nothing.
#[test]
fn barman_encrypted_wal_restores_and_a_failing_passphrase_command_is_clear() {
    let keys = TestKeys::for_owner();
    let (k, v) = keys.env();
    let genv = [(k.as_str(), v.as_str())];
    let env = PgbakEnv::new();
    let extra = encrypted_lines(env.dir.path(), BACKUP_KEY, PASSPHRASE);
    env.write_config_conninfo(
        "host=127.0.0.1 port=1 user=postgres dbname=postgres",
        &extra,
    );

    // A history file, gzip-compressed then encrypted by gpg, placed as Barman places it.
    let name = "00000002.history";
    let text = "1\t0/3000000\tno recovery target specified\n";
    let compressed = {
        let mut gzip = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut gzip.stdin.take().unwrap(), text.as_bytes()).unwrap();
        gzip.wait_with_output().unwrap().stdout
    };
    let out = keys.gpg(
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "--recipient",
            BACKUP_KEY,
        ],
        Some(&compressed),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = env
        .server_dir()
        .join("wals")
        .join(pgbak_repo::wal::WalArchive::key_of(name).unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &out.stdout).unwrap();
    pgbak_tests::give_to_owner(&env.home);
    let back = env.restore_dir("history");
    let got = env.run_plain_env(&["get-wal", "main", name, back.to_str().unwrap()], &genv);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), text);

    // The passphrase command fails: get-wal fails clearly and writes nothing.
    let failing = extra.replace(
        "encryption_passphrase_command = cat",
        "encryption_passphrase_command = false && cat",
    );
    env.write_config_conninfo(
        "host=127.0.0.1 port=1 user=postgres dbname=postgres",
        &failing,
    );
    let dest = env.restore_dir("not-written");
    let out = env.run_plain_env(&["get-wal", "main", name, dest.to_str().unwrap()], &genv);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("encryption_passphrase_command failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(PASSPHRASE) && !out.stdout.contains(PASSPHRASE));
    assert!(!dest.exists(), "get-wal wrote {}", dest.display());
}

/// `pgbak` on the far side of SSH with the test keys: a script that sets `GNUPGHOME` (an
/// operator's keys would be in the user's own `~/.gnupg`) and runs pgbak.
fn pgbak_with_keys(env: &PgbakEnv, keys: &TestKeys) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = env.dir.path().join("pgbak-with-keys");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nGNUPGHOME={} exec {} \"$@\"\n",
            keys.home.display(),
            pgbak_tests::pgbak_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    pgbak_tests::give_to_owner(&script);
    script
}

/// The database host's side over SSH with encryption on: `wal-archive` as archive_command
/// (put-wal on the backup host encrypts), a recovery shipped with `--remote-ssh-command` from an
/// encrypted backup, and `wal-restore --parallel 4` as the restored server's restore_command
/// (get-wal on the backup host decrypts): the rows of the target time come back exactly.
#[test]
fn ssh_helpers_and_remote_recovery_with_encryption() {
    use pgbak_tests::Sshd;
    let keys = TestKeys::for_owner();
    let (k, v) = keys.env();
    let genv = [(k.as_str(), v.as_str())];
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let extra = encrypted_lines(env.dir.path(), BACKUP_KEY, PASSPHRASE);
    let remote_pgbak = pgbak_with_keys(&env, keys);
    let ssh = sshd.ssh_command();
    let (ssh_cmd, dest) = ssh.rsplit_once(' ').unwrap();
    let (user, host) = dest.split_once('@').unwrap();
    let helper = |name: &str, args: &str| {
        format!(
            "{bin} -c {conf} {name} --ssh-command \"{ssh_cmd}\" -U {user} --pgbak-path {remote} {args} {host} main",
            bin = pgbak_tests::pgbak_bin().display(),
            conf = env.config.display(),
            remote = remote_pgbak.display(),
        )
    };
    // No GNUPGHOME for the server: only the far side of SSH has the keys.
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some(format!("{} %p", helper("wal-archive", ""))),
        ..Default::default()
    });
    env.write_config(&cluster, &extra);
    cluster.start_now();
    let run = |args: &[&str]| env.run_plain_env(args, &genv);
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 2000);
    let out = run(&[
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ])
    .ok();
    let id = out.json()["backup_id"].as_str().unwrap().to_string();
    insert(&cluster, 2001, 2100);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(std::time::Duration::from_millis(20));
    insert(&cluster, 2101, 2200);
    for round in 0..3 {
        insert(&cluster, 3000 + round, 3000 + round);
        cluster.psql("SELECT pg_switch_wal()");
    }
    run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ])
    .ok();

    // What wal-archive sent was stored encrypted by put-wal.
    let names = env.archived_wal_files();
    let segments: Vec<&String> = names.iter().filter(|n| n.len() == 24).collect();
    assert!(segments.len() >= 3, "{names:?}");
    for segment in &segments {
        let path = env
            .server_dir()
            .join("wals")
            .join(&segment[..16])
            .join(segment.as_str());
        let stored = std::fs::read(&path).unwrap();
        let plain = zstd::decode_all(&gpg_decrypt(keys, &stored)[..]).unwrap();
        assert_eq!(plain.len(), 16 << 20, "{segment}");
    }

    let dest = env.restore_dir("remote");
    run(&[
        "recover",
        "main",
        &id,
        dest.to_str().unwrap(),
        "--remote-ssh-command",
        &ssh,
        "--target-time",
        &target_time,
        "--target-action",
        "promote",
    ])
    .ok();
    // Shipped in clear: the tree PostgreSQL reads and the WAL it needs, decrypted on this side.
    assert!(dest.join("global/pg_control").is_file());
    let copied = dest.join("pgbak_wal");
    let shipped: Vec<_> = std::fs::read_dir(&copied)
        .unwrap_or_else(|e| panic!("{}: {e}", copied.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().len() == 24)
        .collect();
    assert!(!shipped.is_empty());
    for p in &shipped {
        assert_eq!(
            std::fs::metadata(p).unwrap().len(),
            16 << 20,
            "{}",
            p.display()
        );
    }
    // The WAL then comes through wal-restore instead.
    std::fs::remove_dir_all(&copied).unwrap();
    let restore_command = format!(
        "restore_command='{} %f %p'",
        helper(
            "wal-restore",
            &format!(
                "-p 4 --spool-dir {}",
                env.dir.path().join("spool").display()
            )
        )
    );
    let restored = Cluster::start_existing(&dest, &["archive_mode=off", &restore_command]);
    restored.wait_for(
        "SELECT pg_is_in_recovery()",
        "f",
        std::time::Duration::from_secs(180),
    );
    assert_eq!(ids(&restored), at_time, "recovery to {target_time}");
}

/// The files of `dir` (a backup's `data/` folder) whose name has `.tar` in it.
fn tar_streams(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tar"))
        .collect();
    out.sort();
    out
}

/// Path and size of every file a `backup_manifest` lists.
fn manifest_files(text: &str) -> Vec<(String, u64)> {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut files: Vec<(String, u64)> = doc["Files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["Path"].as_str().unwrap().to_string(),
                f["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// WAL from `receive-wal` only, stored encrypted by its archiver; `generate-manifest` reads
/// inside an encrypted backup; and a backup encrypted after the fact by the `gpg` command, as
/// Barman encrypts its tar files (each `*.tar*` becomes `*.tar*.gpg`, the clear file removed),
/// restores to a point in time with the streamed WAL.
#[test]
fn streamed_wal_generated_manifest_and_a_backup_encrypted_by_the_gpg_command() {
    let keys = TestKeys::for_owner();
    let (k, v) = keys.env();
    let genv = [(k.as_str(), v.as_str())];
    let env = PgbakEnv::new();
    let streaming = "streaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\n";
    let extra = format!(
        "{}{streaming}",
        encrypted_lines(env.dir.path(), BACKUP_KEY, PASSPHRASE)
    );
    // archive_mode = off: receive-wal is the only source of WAL.
    let mut cluster = Cluster::init(ClusterOptions::default());
    env.write_config(&cluster, &extra);
    cluster.start_now();
    let run = |args: &[&str]| env.run_plain_env(args, &genv);
    let mut receiver = env.spawn_plain_env(&["receive-wal", "main"], &genv);
    cluster.wait_for(
        "SELECT count(*) FROM pg_stat_replication",
        "1",
        std::time::Duration::from_secs(60),
    );
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 2000);
    let backup_wait = || {
        run(&[
            "-f",
            "json",
            "backup",
            "main",
            "--wait",
            "--wait-timeout",
            "120",
        ])
        .ok()
        .json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let encrypted = backup_wait();

    // The streamed segments were stored encrypted.
    let names = env.archived_wal_files();
    let segment = names.iter().find(|n| n.len() == 24).expect("a segment");
    let stored = std::fs::read(
        env.server_dir()
            .join("wals")
            .join(&segment[..16])
            .join(segment),
    )
    .unwrap();
    assert_eq!(
        zstd::decode_all(&gpg_decrypt(keys, &stored)[..])
            .unwrap()
            .len(),
        16 << 20
    );

    // generate-manifest lists what is inside the encrypted stream, as the server's own
    // manifest did, and verify-backup accepts it.
    let data = env.server_dir().join("base").join(&encrypted).join("data");
    let original = std::fs::read_to_string(data.join("backup_manifest")).unwrap();
    std::fs::remove_file(data.join("backup_manifest")).unwrap();
    let out = run(&["-f", "json", "generate-manifest", "main", &encrypted]).ok();
    let generated = std::fs::read_to_string(data.join("backup_manifest")).unwrap();
    assert_eq!(
        manifest_files(&generated),
        manifest_files(&original),
        "{}",
        out.stdout
    );
    assert_eq!(run(&["verify-backup", "main", &encrypted]).code, 0);

    // A gzip backup taken in clear, then encrypted file by file by the gpg command.
    let clear_lines = extra
        .replace("encryption = gpg", "encryption = none")
        .replace("backup_compression = zstd", "backup_compression = gzip");
    env.write_config(&cluster, &clear_lines);
    let by_gpg = backup_wait();
    env.write_config(&cluster, &extra);
    let data = env.server_dir().join("base").join(&by_gpg).join("data");
    let streams = tar_streams(&data);
    assert_eq!(streams.len(), 1, "{streams:?}");
    for clear in &streams {
        let name = clear.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".tar.gz"), "{name}");
        let out = keys.gpg(
            &[
                "--trust-model",
                "always",
                "--compress-level",
                "0",
                "--encrypt",
                "--recipient",
                BACKUP_KEY,
            ],
            Some(&std::fs::read(clear).unwrap()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sealed = clear.with_file_name(format!("{name}.gpg"));
        std::fs::write(&sealed, &out.stdout).unwrap();
        pgbak_tests::give_to_owner(&sealed);
        std::fs::remove_file(clear).unwrap();
    }

    insert(&cluster, 2001, 2100);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(std::time::Duration::from_millis(20));
    insert(&cluster, 2101, 2200);
    cluster.psql("DELETE FROM t WHERE id <= 50");
    run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "120",
    ])
    .ok();
    let dest = env.restore_dir("from_gpg_command");
    run(&[
        "recover",
        "main",
        &by_gpg,
        dest.to_str().unwrap(),
        "--target-time",
        &target_time,
        "--target-action",
        "promote",
    ])
    .ok();
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for(
        "SELECT pg_is_in_recovery()",
        "f",
        std::time::Duration::from_secs(180),
    );
    assert_eq!(ids(&restored), at_time, "recovery to {target_time}");
    drop(restored);

    // A file dropped into incoming/ (Barman's archive_command target) is archived encrypted by
    // cron.
    let incoming = env.server_dir().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let history = "00000009.history";
    let text = "8\t0/9000000\tno recovery target specified\n";
    std::fs::write(incoming.join(history), text).unwrap();
    pgbak_tests::give_to_owner(&incoming);
    let out = run(&["-f", "json", "cron"]).ok();
    assert!(!incoming.join(history).exists(), "{}", out.stdout);
    let stored = std::fs::read(
        env.server_dir()
            .join("wals")
            .join(pgbak_repo::wal::WalArchive::key_of(history).unwrap()),
    )
    .unwrap();
    assert_eq!(
        zstd::decode_all(&gpg_decrypt(keys, &stored)[..]).unwrap(),
        text.as_bytes()
    );

    let out = run(&["receive-wal", "main", "--stop"]).ok();
    assert!(out.stdout.contains("Stopped receive-wal"), "{out:?}");
    assert!(receiver.wait().unwrap().success());
}
