//! The replication client against real PostgreSQL clusters that each test starts and stops itself:
//! TCP and Unix sockets, every password method, the password file, IDENTIFY_SYSTEM, SHOW and a
//! BASE_BACKUP with a manifest and a tablespace.

use pgbak_wal::{
    BackupLabel, BaseBackupOptions, BaseBackupSink, ConnParams, Error, Lsn, ReplicationClient,
    TablespaceInfo,
};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throwaway cluster: initdb as the `postgres` user when running as root (PostgreSQL refuses
/// root), a free port on 127.0.0.1, its own socket directory. Stopped with `-m immediate` on drop.
struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
    bindir: PathBuf,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PGBAK_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .expect("PostgreSQL server binaries not found: install postgresql or set PGBAK_PG_BINDIR")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `path` belong to the server's user so that it can write there.
fn give_to_postgres(path: &Path) {
    if is_root() {
        check(
            Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(path)
                .output()
                .unwrap(),
            "chown",
        );
    }
}

impl Cluster {
    fn pg(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("pgbak-wal-it")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = root.join("data");
        let sock = root.join("sock");
        std::fs::create_dir(&sock).unwrap();
        give_to_postgres(&root);
        let mut c = Cluster {
            _dir: dir,
            root,
            data,
            sock,
            port: free_port(),
            bindir: bindir(),
        };
        check(
            c.pg("initdb")
                .arg("-D")
                .arg(&c.data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ])
                .output()
                .unwrap(),
            "initdb",
        );
        let conf = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 4\nfsync = off\nlog_min_messages = warning\n",
            c.port,
            c.sock.display()
        );
        let conf_path = c.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        std::fs::write(
            c.data.join("pg_hba.conf"),
            "local all all trust\n\
             local replication all trust\n\
             host replication trust_user 127.0.0.1/32 trust\n\
             host replication postgres 127.0.0.1/32 trust\n\
             host replication pw_user 127.0.0.1/32 password\n\
             host replication md5_user 127.0.0.1/32 md5\n\
             host replication scram_user 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let log = c.root.join("server.log");
        let started = c
            .pg("pg_ctl")
            .arg("-D")
            .arg(&c.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "start"])
            .output()
            .unwrap();
        if !started.status.success() {
            // The port may have been taken between probing and binding: try once more elsewhere.
            c.port = free_port();
            let mut text = std::fs::read_to_string(&conf_path).unwrap();
            text.push_str(&format!("\nport = {}\n", c.port));
            std::fs::write(&conf_path, text).unwrap();
            let again = c
                .pg("pg_ctl")
                .arg("-D")
                .arg(&c.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "120", "start"])
                .output()
                .unwrap();
            if !again.status.success() {
                panic!(
                    "pg_ctl start failed: {}\nserver log:\n{}",
                    String::from_utf8_lossy(&again.stderr),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        c.psql(
            "CREATE ROLE trust_user LOGIN REPLICATION; \
             CREATE ROLE pw_user LOGIN REPLICATION PASSWORD 'pw secret'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN REPLICATION PASSWORD 'md5''secret'; \
             SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE scram_user LOGIN REPLICATION PASSWORD 'scram:secret\\x';",
        );
        c
    }

    fn psql(&self, sql: &str) -> String {
        check(
            self.pg("psql")
                .arg("-h")
                .arg(&self.sock)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output()
                .unwrap(),
            "psql",
        )
        .trim()
        .to_string()
    }

    fn system_identifier(&self) -> String {
        let out = check(
            self.pg("pg_controldata")
                .arg("-D")
                .arg(&self.data)
                .output()
                .unwrap(),
            "pg_controldata",
        );
        out.lines()
            .find_map(|l| l.strip_prefix("Database system identifier:"))
            .map(|v| v.trim().to_string())
            .expect("pg_controldata prints the system identifier")
    }

    fn tcp(&self, user: &str, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres {extra}",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

async fn connect(conninfo: &str) -> pgbak_wal::Result<ReplicationClient> {
    ReplicationClient::connect(&ConnParams::resolve(conninfo)?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_unix_socket_identify_system_and_show() {
    let c = Cluster::start();
    let systemid = c.system_identifier();

    let mut tcp = connect(&c.tcp("trust_user", "application_name=pgbak_it connect_timeout=10"))
        .await
        .unwrap();
    assert!(
        tcp.server_version_num() >= 130000,
        "{}",
        tcp.server_version_num()
    );
    assert!(tcp.parameter("server_version").is_some());
    assert_eq!(tcp.parameter("application_name"), Some("pgbak_it"));
    let id = tcp.identify_system().await.unwrap();
    assert_eq!(id.systemid, systemid);
    assert_eq!(id.timeline, 1);
    assert!(id.xlogpos > Lsn::INVALID);
    assert_eq!(id.dbname, None);
    assert_eq!(tcp.show("wal_segment_size").await.unwrap(), "16MB");
    assert_eq!(tcp.wal_segment_size().await.unwrap(), 16 << 20);
    assert_eq!(tcp.show("max_wal_senders").await.unwrap(), "4");
    let err = tcp.show("no_such_setting").await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42704"), "{err}");
    // Still usable after a server error.
    assert_eq!(tcp.identify_system().await.unwrap().systemid, systemid);
    tcp.close().await.unwrap();

    let unix = format!("host={} port={} user=postgres", c.sock.display(), c.port);
    let params = ConnParams::resolve(&unix).unwrap();
    assert!(params.socket_path().unwrap().exists());
    let mut sock = ReplicationClient::connect(&params).await.unwrap();
    assert_eq!(sock.identify_system().await.unwrap().systemid, systemid);
    // sslmode=require does not apply to Unix sockets, as with libpq.
    let mut sock2 = connect(&format!("{unix} sslmode=require")).await.unwrap();
    assert_eq!(sock2.show("wal_level").await.unwrap(), "replica");

    // A URI with a percent-encoded socket directory reaches the same server.
    let enc: String = c
        .sock
        .to_str()
        .unwrap()
        .bytes()
        .map(|b| {
            if b == b'/' {
                "%2F".to_string()
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    let mut uri = connect(&format!("postgresql://postgres@{enc}:{}/postgres", c.port))
        .await
        .unwrap();
    assert_eq!(uri.identify_system().await.unwrap().systemid, systemid);

    // A TLS demand to a server without SSL is refused, never answered in cleartext.
    let err = connect(&c.tcp("trust_user", "sslmode=require"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::TlsRequired { .. }), "{err}");
    assert!(err.to_string().contains("does not support SSL"), "{err}");
    // prefer falls back to cleartext on the same connection.
    let plain = connect(&c.tcp("trust_user", "sslmode=prefer"))
        .await
        .unwrap();
    assert!(!plain.is_encrypted());
    plain.close().await.unwrap();

    // A pg_hba.conf rejection is an authentication error that names the server's reason.
    let err = connect(&c.tcp("nobody", "")).await.err().unwrap();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_methods_and_password_file() {
    let c = Cluster::start();
    connect(&c.tcp("trust_user", "")).await.unwrap();

    let users = [
        ("pw_user", "pw secret"),
        ("md5_user", "md5'secret"),
        ("scram_user", "scram:secret\\x"),
    ];
    for (user, pw) in users {
        let quoted = pw.replace('\\', "\\\\").replace('\'', "\\'");
        let mut ok = connect(&c.tcp(user, &format!("password='{quoted}'")))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        assert!(!ok.identify_system().await.unwrap().systemid.is_empty());

        let err = connect(&c.tcp(user, "password=wrong")).await.err().unwrap();
        assert!(
            matches!(&err, Error::Authentication { user: u, .. } if u == user),
            "{user}: {err}"
        );
        assert!(
            err.to_string().contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{user}: {err}"
        );

        // No password anywhere: a clear error, not a server round trip that fails obscurely.
        let nopass = ConnParams::resolve_with(&c.tcp(user, ""), &|_| None, None).unwrap();
        let err = ReplicationClient::connect(&nopass).await.err().unwrap();
        assert!(
            matches!(err, Error::PasswordRequired { .. }),
            "{user}: {err}"
        );
    }

    // The password file (PGPASSFILE), with libpq's escapes for ':' and '\'.
    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# test\n127.0.0.1:{port}:*:scram_user:scram\\:secret\\\\x\n127.0.0.1:{port}:*:md5_user:md5'secret\n",
            port = c.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = pgpass.to_str().unwrap().to_string();
    let env = move |k: &str| (k == "PGPASSFILE").then(|| path.clone());
    for user in ["scram_user", "md5_user"] {
        let params = ConnParams::resolve_with(&c.tcp(user, ""), &env, None).unwrap();
        assert!(params.password.is_some(), "{user}");
        let mut client = ReplicationClient::connect(&params)
            .await
            .unwrap_or_else(|e| panic!("{user} via PGPASSFILE: {e}"));
        client.identify_system().await.unwrap();
    }
    // The same file readable by others is ignored, as libpq does.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let params = ConnParams::resolve_with(&c.tcp("scram_user", ""), &env, None).unwrap();
    assert_eq!(params.password, None);
}

/// Keeps everything a BASE_BACKUP delivers (test data is small).
#[derive(Default)]
struct Collect {
    begun: Option<(Lsn, u32, Vec<TablespaceInfo>)>,
    archives: Vec<(String, Option<String>, Vec<u8>, bool)>,
    manifest: Vec<u8>,
    progress_calls: usize,
    last_progress: u64,
}

impl BaseBackupSink for Collect {
    fn begin(&mut self, start: Lsn, tli: u32, ts: &[TablespaceInfo]) -> io::Result<()> {
        self.begun = Some((start, tli, ts.to_vec()));
        Ok(())
    }
    fn archive_start(&mut self, name: &str, loc: Option<&str>) -> io::Result<()> {
        self.archives
            .push((name.to_string(), loc.map(str::to_string), Vec::new(), false));
        Ok(())
    }
    fn archive_data(&mut self, data: &[u8]) -> io::Result<()> {
        let a = self
            .archives
            .last_mut()
            .ok_or_else(|| io::Error::other("data before start"))?;
        assert!(!a.3, "data after end");
        a.2.extend_from_slice(data);
        Ok(())
    }
    fn archive_end(&mut self) -> io::Result<()> {
        let a = self
            .archives
            .last_mut()
            .ok_or_else(|| io::Error::other("end before start"))?;
        a.3 = true;
        Ok(())
    }
    fn manifest_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.manifest.extend_from_slice(data);
        Ok(())
    }
    fn progress(&mut self, done: u64) -> io::Result<()> {
        assert!(done >= self.last_progress, "progress went backwards");
        self.last_progress = done;
        self.progress_calls += 1;
        Ok(())
    }
}

/// Entries of a ustar archive: (name, contents).
fn tar_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let field = |h: &[u8]| {
        let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
        String::from_utf8_lossy(&h[..end]).into_owned()
    };
    let mut out = Vec::new();
    let mut off = 0;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        assert_eq!(
            &h[257..262],
            b"ustar",
            "entry at offset {off} has no ustar magic"
        );
        let mut name = field(&h[0..100]);
        let prefix = field(&h[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let size = usize::from_str_radix(field(&h[124..136]).trim(), 8).unwrap();
        let body = data[off + 512..off + 512 + size].to_vec();
        out.push((name, body));
        off += 512 + size.div_ceil(512) * 512;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_backup_with_manifest_and_tablespace() {
    let c = Cluster::start();
    let ts_dir = c.root.join("ts1");
    std::fs::create_dir(&ts_dir).unwrap();
    give_to_postgres(&ts_dir);
    c.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts_dir.display()
    ));
    c.psql(
        "CREATE TABLE t (id int) TABLESPACE ts1; INSERT INTO t SELECT generate_series(1, 10000);",
    );
    let oid: u32 = c
        .psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        .parse()
        .unwrap();

    let mut client = connect(&c.tcp("postgres", "")).await.unwrap();
    let opts = BaseBackupOptions {
        label: "pgbak it's a test".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: Some("SHA256".into()),
        tablespace_map: true,
        max_rate_kbps: None,
        verify_checksums: true,
        wait_for_wal_archive: false,
        server_compression: None,
        incremental: false,
    };
    let mut sink = Collect::default();
    let end = client.base_backup(&opts, &mut sink).await.unwrap();
    assert!(end.end_lsn >= end.start_lsn, "{end:?}");
    assert_eq!((end.start_tli, end.end_tli), (1, 1));

    let (start, tli, tablespaces) = sink.begun.clone().expect("begin was called");
    assert_eq!((start, tli), (end.start_lsn, 1));
    assert_eq!(tablespaces.len(), 2, "{tablespaces:?}");
    let ts = tablespaces
        .iter()
        .find(|t| t.oid == Some(oid))
        .expect("the tablespace is listed");
    assert_eq!(ts.location.as_deref(), Some(ts_dir.to_str().unwrap()));
    assert!(ts.size_kb.is_some());
    assert!(tablespaces
        .iter()
        .any(|t| t.oid.is_none() && t.location.is_none()));
    assert!(sink.progress_calls > 0 && sink.last_progress > 0);

    let names: Vec<&str> = sink.archives.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"base.tar") && names.contains(&format!("{oid}.tar").as_str()),
        "{names:?}"
    );
    assert!(sink.archives.iter().all(|a| a.3), "every archive was ended");

    let base = &sink.archives.iter().find(|a| a.0 == "base.tar").unwrap();
    assert_eq!(base.1, None);
    assert_eq!(&base.2[257..262], b"ustar");
    let entries = tar_entries(&base.2);
    let file = |n: &str| entries.iter().find(|e| e.0 == n).map(|e| e.1.clone());
    assert!(file("PG_VERSION").is_some(), "PG_VERSION in base.tar");
    let label =
        BackupLabel::parse(&String::from_utf8(file("backup_label").unwrap()).unwrap()).unwrap();
    assert_eq!(label.start_lsn, end.start_lsn);
    assert_eq!(label.label, "pgbak it's a test");
    assert_eq!(label.backup_method, "streamed");
    assert_eq!(label.backup_from, "primary");
    assert_eq!(label.start_timeline, 1);
    let map = String::from_utf8(file("tablespace_map").unwrap()).unwrap();
    assert!(
        map.starts_with(&format!("{oid} {}", ts_dir.display())),
        "{map:?}"
    );

    let ts_tar = &sink
        .archives
        .iter()
        .find(|a| a.0 == format!("{oid}.tar"))
        .unwrap();
    assert_eq!(ts_tar.1.as_deref(), Some(ts_dir.to_str().unwrap()));
    let ts_entries = tar_entries(&ts_tar.2);
    assert!(
        ts_entries.iter().any(|e| e.0.starts_with("PG_")),
        "tablespace version directory"
    );

    let manifest = String::from_utf8(sink.manifest.clone()).unwrap();
    assert!(
        manifest.starts_with("{ \"PostgreSQL-Backup-Manifest-Version\""),
        "{}",
        &manifest[..80.min(manifest.len())]
    );
    assert!(manifest.contains("\"Path\": \"PG_VERSION\""));
    assert!(manifest.contains("SHA256"));
    assert!(manifest.trim_end().ends_with('}'));

    // The connection is back in a clean state.
    let id = client.identify_system().await.unwrap();
    assert!(id.xlogpos >= end.end_lsn);
}
