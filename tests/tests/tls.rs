//! TLS to PostgreSQL end to end, with certificates made by the test: a cluster with `ssl = on`
//! and a `hostssl`-only pg_hba.conf, on both of pgbak's connections (SQL: `switch-wal`;
//! replication: `receive-wal --create-slot`). What each sslmode checks (verify-full against the
//! wrong host name, verify-ca against an unknown CA), `cert` authentication, channel binding with
//! SCRAM-SHA-256-PLUS, the `PGSSL*` variables; a server without SSL refusing `require`; and a
//! backup, `receive-wal` streaming and a restore over TLS.

use pgbak_tests::{
    command_as_owner, pgbak_bin, recover_and_start, Cluster, ClusterOptions, PgbakEnv, PgbakOutput,
    TestPki,
};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const SLOT: &str = "streaming_archiver = on\nslot_name = pgbak\n";
const SCRAM_PASSWORD: &str = "Scr4m-secret-pw";

/// A cluster with SSL on whose pg_hba.conf only has `hostssl` lines for TCP: `postgres` trusted,
/// `certuser` by client certificate, `scramuser` by SCRAM-SHA-256.
fn ssl_cluster(pki: &TestPki, archive_command: Option<String>) -> Cluster {
    let hba = [
        "hostssl all certuser 127.0.0.1/32 cert",
        "hostssl replication certuser 127.0.0.1/32 cert",
        "hostssl all scramuser 127.0.0.1/32 scram-sha-256",
        "hostssl replication scramuser 127.0.0.1/32 scram-sha-256",
        "hostssl all postgres 127.0.0.1/32 trust",
        "hostssl replication postgres 127.0.0.1/32 trust",
    ];
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command,
        hba: hba.iter().map(|s| s.to_string()).collect(),
        no_tcp_trust: true,
        extra_conf: vec!["password_encryption = 'scram-sha-256'".into()],
        ..ClusterOptions::default()
    });
    let conf = pki.install_server(&cluster.data_dir, &["localhost", "127.0.0.1"]);
    let path = cluster.data_dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push('\n');
    text.push_str(&conf.join("\n"));
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    cluster.start_now();
    cluster.psql(&format!(
        "CREATE ROLE certuser LOGIN SUPERUSER REPLICATION; \
         CREATE ROLE scramuser LOGIN SUPERUSER REPLICATION PASSWORD '{SCRAM_PASSWORD}'"
    ));
    cluster
}

/// `host=localhost hostaddr=127.0.0.1 port=... dbname=postgres` plus `extra`.
fn conninfo(cluster: &Cluster, extra: &str) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres {extra}",
        cluster.port
    )
}

/// Runs one SQL command (`switch-wal`) and one replication command (`receive-wal --create-slot`,
/// then `--drop-slot`) with `conninfo` and extra environment variables.
fn both(env: &PgbakEnv, conninfo: &str, envs: &[(&str, &str)]) -> [PgbakOutput; 2] {
    env.write_config_conninfo(conninfo, SLOT);
    let sql = env.run_env(&["switch-wal", "main", "--force"], envs);
    let repl = env.run_env(&["receive-wal", "main", "--create-slot"], envs);
    if repl.code == 0 {
        env.run_env(&["receive-wal", "main", "--drop-slot"], envs)
            .ok();
    }
    [sql, repl]
}

#[track_caller]
fn assert_both_ok(env: &PgbakEnv, conninfo: &str, envs: &[(&str, &str)]) {
    for out in both(env, conninfo, envs) {
        assert_eq!(out.code, 0, "{conninfo} {envs:?}: {out:?}");
    }
}

#[track_caller]
fn assert_both_refused(env: &PgbakEnv, conninfo: &str, envs: &[(&str, &str)], want: &str) {
    for out in both(env, conninfo, envs) {
        assert_ne!(out.code, 0, "{conninfo} {envs:?}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{conninfo}: want {want:?}: {out:?}"
        );
        assert!(!out.stderr.contains(SCRAM_PASSWORD), "{out:?}");
        assert!(!out.stdout.contains(SCRAM_PASSWORD), "{out:?}");
    }
}

#[test]
fn certificate_checks_client_certificates_and_channel_binding() {
    let pki = TestPki::new();
    let cluster = ssl_cluster(&pki, None);
    let env = PgbakEnv::new();
    let root = pki.root_crt().display().to_string();
    let other = pki.other_root_crt().display().to_string();

    // verify-full with the right root certificate, by name and by IP address.
    assert_both_ok(
        &env,
        &conninfo(
            &cluster,
            &format!("user=postgres sslmode=verify-full sslrootcert={root}"),
        ),
        &[],
    );
    assert_both_ok(
        &env,
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={root}",
            cluster.port
        ),
        &[],
    );
    // The default sslmode (prefer) gets TLS from this server, which admits nothing else.
    assert_both_ok(&env, &conninfo(&cluster, "user=postgres"), &[]);
    // allow: cleartext first; refused by pg_hba.conf, then again with TLS.
    assert_both_ok(
        &env,
        &conninfo(&cluster, "user=postgres sslmode=allow"),
        &[],
    );
    // disable: cleartext only, which this server refuses.
    assert_both_refused(
        &env,
        &conninfo(&cluster, "user=postgres sslmode=disable"),
        &[],
        "no encryption",
    );

    // verify-full against a name the certificate does not carry.
    let wrong_name = format!(
        "host=db.wrong.example hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={root}",
        cluster.port
    );
    assert_both_refused(
        &env,
        &wrong_name,
        &[],
        "does not match host name \"db.wrong.example\"",
    );
    // verify-ca does not check the name ...
    assert_both_ok(&env, &wrong_name.replace("verify-full", "verify-ca"), &[]);
    // ... but does check the CA.
    assert_both_refused(
        &env,
        &conninfo(
            &cluster,
            &format!("user=postgres sslmode=verify-ca sslrootcert={other}"),
        ),
        &[],
        "not signed by a trusted root certificate",
    );
    // verify-full without a root certificate file anywhere.
    assert_both_refused(
        &env,
        &conninfo(
            &cluster,
            &format!("user=postgres sslmode=verify-full sslrootcert={root}.missing"),
        ),
        &[],
        "does not exist",
    );

    // cert authentication: the client certificate is the credential.
    let (cert, key) = pki.client("certuser");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let with_cert = conninfo(
        &cluster,
        &format!(
            "user=certuser sslmode=verify-full sslrootcert={root} sslcert={cert} sslkey={key}"
        ),
    );
    assert_both_ok(&env, &with_cert, &[]);
    // Without it the server refuses.
    assert_both_refused(
        &env,
        &conninfo(
            &cluster,
            &format!("user=certuser sslmode=verify-full sslrootcert={root}"),
        ),
        &[],
        "certificate",
    );
    // A key file others may read is refused before connecting, as libpq does.
    let open_key = pki.dir.path().join("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    std::fs::set_permissions(
        &open_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    pgbak_tests::give_to_owner(&open_key);
    assert_both_refused(
        &env,
        &with_cert.replace(&key, &open_key.display().to_string()),
        &[],
        "has group or world access",
    );

    // The PGSSL* variables, as libpq reads them.
    let plain = conninfo(&cluster, "user=certuser");
    let envs = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", root.as_str()),
        ("PGSSLCERT", cert.as_str()),
        ("PGSSLKEY", key.as_str()),
    ];
    assert_both_ok(&env, &plain, &envs);
    let wrong_env = format!(
        "host=db.wrong.example hostaddr=127.0.0.1 port={} user=certuser dbname=postgres",
        cluster.port
    );
    assert_both_refused(&env, &wrong_env, &envs, "does not match host name");
    assert_both_refused(
        &env,
        &plain,
        &[
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", other.as_str()),
        ],
        "not signed by a trusted root certificate",
    );

    // SCRAM-SHA-256-PLUS: channel binding required and done, on both connections.
    let scram = conninfo(
        &cluster,
        &format!("user=scramuser sslmode=verify-full sslrootcert={root} channel_binding=require"),
    );
    assert_both_ok(&env, &scram, &[("PGPASSWORD", SCRAM_PASSWORD)]);
    assert_both_ok(
        &env,
        &format!("{scram} password={SCRAM_PASSWORD}"),
        &[("PGCHANNELBINDING", "require")],
    );
    // A wrong password is refused and never shown.
    assert_both_refused(
        &env,
        &scram,
        &[("PGPASSWORD", "not-the-password")],
        "scramuser",
    );
    // channel_binding=require refuses authentication that is not channel-bound (cert here).
    assert_both_refused(
        &env,
        &format!("{with_cert} channel_binding=require"),
        &[],
        "channel binding",
    );
}

#[test]
fn encryption_demanded_from_a_server_without_ssl_is_refused() {
    let cluster = Cluster::start(ClusterOptions {
        hba: vec![
            "host all scramuser 127.0.0.1/32 scram-sha-256".into(),
            "host replication scramuser 127.0.0.1/32 scram-sha-256".into(),
        ],
        extra_conf: vec!["password_encryption = 'scram-sha-256'".into()],
        ..ClusterOptions::default()
    });
    cluster.psql(&format!(
        "CREATE ROLE scramuser LOGIN SUPERUSER REPLICATION PASSWORD '{SCRAM_PASSWORD}'"
    ));
    let env = PgbakEnv::new();
    let pki = TestPki::new();
    let root = pki.root_crt().display().to_string();
    let base = conninfo(&cluster, "user=postgres");

    for mode in ["require", "verify-ca", "verify-full"] {
        assert_both_refused(
            &env,
            &format!("{base} sslmode={mode} sslrootcert={root}"),
            &[],
            &format!("does not support SSL, but sslmode={mode} requires an encrypted connection"),
        );
        assert_both_refused(
            &env,
            &base,
            &[("PGSSLMODE", mode), ("PGSSLROOTCERT", root.as_str())],
            "does not support SSL",
        );
    }
    assert_eq!(
        cluster.psql("SELECT count(*) FROM pg_replication_slots"),
        "0",
        "no slot was made over a connection that should have been refused"
    );
    // Without a demand, cleartext works as with libpq.
    assert_both_ok(&env, &base, &[]);
    assert_both_ok(&env, &format!("{base} sslmode=disable"), &[]);

    // channel_binding=require without TLS: refused before the password is used.
    let scram = conninfo(&cluster, "user=scramuser channel_binding=require");
    assert_both_refused(
        &env,
        &scram,
        &[("PGPASSWORD", SCRAM_PASSWORD)],
        "channel binding",
    );
    assert_both_ok(
        &env,
        &conninfo(&cluster, "user=scramuser"),
        &[("PGPASSWORD", SCRAM_PASSWORD)],
    );
    // sslnegotiation=direct needs PostgreSQL 17: this server does not speak it.
    assert_both_refused(
        &env,
        &format!("{base} sslmode=require sslnegotiation=direct"),
        &[],
        "sslnegotiation=direct needs a PostgreSQL 17",
    );
}

/// `pgbak receive-wal main` in the background, stopped with `--stop` when dropped.
struct Receiver<'a> {
    env: &'a PgbakEnv,
    child: Option<Child>,
    log: PathBuf,
}

impl<'a> Receiver<'a> {
    fn start(env: &'a PgbakEnv) -> Receiver<'a> {
        let log = env.dir.path().join("receive-wal.log");
        let child = command_as_owner(pgbak_bin())
            .arg("-c")
            .arg(&env.config)
            .args(["--log-level", "info", "receive-wal", "main"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start receive-wal");
        let r = Receiver {
            env,
            child: Some(child),
            log,
        };
        let start = Instant::now();
        while !r.log_text().contains("starting WAL streaming") {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "receive-wal did not start streaming:\n{}",
                r.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Receiver<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.env.run(&["receive-wal", "main", "--stop"]);
            let _ = child.wait();
        }
    }
}

fn ids(c: &Cluster) -> Vec<i64> {
    c.psql("SELECT id FROM t ORDER BY id")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn backup_streaming_and_restore_over_tls() {
    let pki = TestPki::new();
    // No archive_command: every WAL byte reaches pgbak over the encrypted replication connection.
    let cluster = ssl_cluster(&pki, None);
    let env = PgbakEnv::new();
    let root = pki.root_crt().display().to_string();
    let (cert, key) = pki.client("certuser");
    env.write_config_conninfo(
        &conninfo(
            &cluster,
            &format!(
                "user=certuser sslmode=verify-full sslrootcert={root} sslcert={} sslkey={}",
                cert.display(),
                key.display()
            ),
        ),
        "streaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\ncompression = zstd\n",
    );
    let receiver = Receiver::start(&env);
    // The walsender's connection is encrypted.
    assert_eq!(
        cluster.psql(
            "SELECT s.ssl::text || ' ' || r.usename FROM pg_stat_replication r \
             JOIN pg_stat_ssl s ON s.pid = r.pid"
        ),
        "true certuser"
    );

    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);
    cluster.psql("INSERT INTO t SELECT g, 'after' FROM generate_series(5001, 5100) g");
    cluster.psql("DELETE FROM t WHERE id <= 10");
    let expected = ids(&cluster);
    env.switch_wal_archived();

    let restored = recover_and_start(&env, "restored", &[]);
    assert_eq!(ids(&restored), expected, "restored rows");
    drop(restored);
    drop(receiver);
}
