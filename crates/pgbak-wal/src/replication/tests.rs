//! The client against a scripted server on an in-memory pipe: exact message sequences for both
//! BASE_BACKUP generations, authentication requests, errors and truncated streams.

use super::*;
use std::time::Duration;
use tokio::io::DuplexStream;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    frame(b'R', &b)
}

fn ready() -> Vec<u8> {
    frame(b'Z', b"I")
}

fn row_desc(names: &[&str]) -> Vec<u8> {
    let mut b = (names.len() as u16).to_be_bytes().to_vec();
    for n in names {
        b.extend_from_slice(n.as_bytes());
        b.push(0);
        b.extend_from_slice(&[0; 4]); // table oid
        b.extend_from_slice(&[0; 2]); // column
        b.extend_from_slice(&25u32.to_be_bytes()); // text
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&[0; 2]); // text format
    }
    frame(b'T', &b)
}

fn data_row(cols: &[Option<&str>]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for c in cols {
        match c {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(s) => {
                b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        }
    }
    frame(b'D', &b)
}

fn complete(tag: &str) -> Vec<u8> {
    frame(b'C', &cstrs(&[tag]))
}

fn copy_out() -> Vec<u8> {
    frame(b'H', &[0, 0, 0])
}

fn copy_data(payload: &[u8]) -> Vec<u8> {
    frame(b'd', payload)
}

fn copy_done() -> Vec<u8> {
    frame(b'c', &[])
}

fn error(code: &str, msg: &str) -> Vec<u8> {
    frame(
        b'E',
        &[
            cstrs(&["SERROR", "VERROR", &format!("C{code}"), &format!("M{msg}")]),
            vec![0],
        ]
        .concat(),
    )
}

fn notice(msg: &str) -> Vec<u8> {
    frame(
        b'N',
        &[
            cstrs(&["SNOTICE", "VNOTICE", "C00000", &format!("M{msg}")]),
            vec![0],
        ]
        .concat(),
    )
}

fn result_set(names: &[&str], rows: &[&[Option<&str>]]) -> Vec<u8> {
    let mut v = row_desc(names);
    for r in rows {
        v.extend(data_row(r));
    }
    v.extend(complete("SELECT"));
    v
}

fn position(lsn: &str, tli: &str) -> Vec<u8> {
    result_set(&["recptr", "tli"], &[&[Some(lsn), Some(tli)]])
}

fn tablespaces(rows: &[&[Option<&str>]]) -> Vec<u8> {
    result_set(&["spcoid", "spclocation", "size"], rows)
}

fn stream_msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend_from_slice(body);
    copy_data(&p)
}

async fn read_exact(s: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).await.unwrap();
    b
}

/// Reads one tagged frontend message: (tag, body).
async fn read_frame(s: &mut DuplexStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    Some((head[0], read_exact(s, len - 4).await))
}

/// How the scripted server authenticates.
enum Auth {
    Trust,
    Cleartext(&'static str),
    Md5(&'static str),
    Gss,
    Sasl(&'static [&'static str]),
}

/// Ends a scripted answer: the server closes the connection after writing it.
const HANG_UP: &[u8] = b"<hang up>";

/// Startup parameters the client sent.
type Startup = Vec<(String, String)>;

/// Plays a server: checks the startup packet and authentication, greets with `version`, then
/// answers each query with the next scripted response. Returns the startup parameters and queries.
async fn play(
    mut s: DuplexStream,
    version: &str,
    auth_kind: Auth,
    answers: Vec<Vec<u8>>,
) -> (Startup, Vec<String>) {
    let len = u32::from_be_bytes(read_exact(&mut s, 4).await.try_into().unwrap()) as usize;
    let body = read_exact(&mut s, len - 4).await;
    assert_eq!(&body[..4], &196608u32.to_be_bytes(), "protocol 3.0");
    let fields: Vec<String> = body[4..]
        .split(|&b| b == 0)
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    let startup: Startup = fields
        .chunks(2)
        .filter(|c| c.len() == 2 && !c[0].is_empty())
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let user = startup.iter().find(|(k, _)| k == "user").unwrap().1.clone();

    let mut out = Vec::new();
    match auth_kind {
        Auth::Trust => {}
        Auth::Cleartext(pw) => {
            s.write_all(&auth(3, &[])).await.unwrap();
            let Some((b'p', body)) = read_frame(&mut s).await else {
                return (startup, vec![]);
            };
            if body != cstrs(&[pw]) {
                s.write_all(&error(
                    "28P01",
                    &format!("password authentication failed for user \"{user}\""),
                ))
                .await
                .unwrap();
                return (startup, vec![]);
            }
        }
        Auth::Md5(pw) => {
            let salt = [1, 2, 3, 4];
            s.write_all(&auth(5, &salt)).await.unwrap();
            let Some((b'p', body)) = read_frame(&mut s).await else {
                return (startup, vec![]);
            };
            let want = md5_hash(user.as_bytes(), pw.as_bytes(), salt);
            if body != cstrs(&[&want]) {
                s.write_all(&error("28P01", "password authentication failed"))
                    .await
                    .unwrap();
                return (startup, vec![]);
            }
        }
        Auth::Gss => {
            s.write_all(&auth(7, &[])).await.unwrap();
            return (startup, vec![]);
        }
        Auth::Sasl(mechs) => {
            let mut list = cstrs(mechs);
            list.push(0);
            s.write_all(&auth(10, &list)).await.unwrap();
            return (startup, vec![]);
        }
    }
    out.extend(auth(0, &[]));
    out.extend(frame(b'S', &cstrs(&["server_version", version])));
    out.extend(frame(b'S', &cstrs(&["integer_datetimes", "on"])));
    out.extend(frame(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    out.extend(notice("welcome"));
    out.extend(ready());
    s.write_all(&out).await.unwrap();

    let mut queries = Vec::new();
    for answer in answers {
        match read_frame(&mut s).await {
            Some((b'Q', body)) => {
                queries.push(String::from_utf8(body[..body.len() - 1].to_vec()).unwrap())
            }
            Some((b'X', _)) | None => break,
            Some((tag, _)) => panic!("unexpected frontend message {tag}"),
        }
        if let Some(last) = answer.strip_suffix(HANG_UP) {
            s.write_all(last).await.unwrap();
            return (startup, queries);
        }
        s.write_all(&answer).await.unwrap();
    }
    // Wait for the client to hang up.
    while let Some((b'Q', _)) = read_frame(&mut s).await {}
    (startup, queries)
}

fn params(password: Option<&str>) -> ConnParams {
    ConnParams {
        host: "fake".into(),
        server_name: Some("fake".into()),
        port: 5432,
        user: "bob".into(),
        dbname: "db".into(),
        password: password.map(str::to_string),
        application_name: Some("pgbak-test".into()),
        connect_timeout: None,
        options: Some("-c wal_sender_timeout=0".into()),
        ssl: crate::conninfo::SslParams::default(),
    }
}

type ServerTask = tokio::task::JoinHandle<(Startup, Vec<String>)>;

async fn connect(
    version: &str,
    auth_kind: Auth,
    password: Option<&str>,
    answers: Vec<Vec<u8>>,
) -> (Result<ReplicationClient>, ServerTask) {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let version = version.to_string();
    let server = tokio::spawn(async move { play(server_end, &version, auth_kind, answers).await });
    let client = ReplicationClient::from_socket(Box::new(client_end), &params(password)).await;
    (client, server)
}

#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    fail_on_data: bool,
}

impl BaseBackupSink for Recorder {
    fn begin(&mut self, start: Lsn, tli: u32, ts: &[TablespaceInfo]) -> io::Result<()> {
        let ts: Vec<String> = ts
            .iter()
            .map(|t| format!("{:?}/{:?}/{:?}", t.oid, t.location, t.size_kb))
            .collect();
        self.events
            .push(format!("begin {start} {tli} [{}]", ts.join(", ")));
        Ok(())
    }
    fn archive_start(&mut self, name: &str, loc: Option<&str>) -> io::Result<()> {
        self.events.push(format!("start {name} {loc:?}"));
        Ok(())
    }
    fn archive_data(&mut self, data: &[u8]) -> io::Result<()> {
        if self.fail_on_data {
            return Err(io::Error::other("disk full"));
        }
        self.events
            .push(format!("data {}", String::from_utf8_lossy(data)));
        Ok(())
    }
    fn archive_end(&mut self) -> io::Result<()> {
        self.events.push("end".into());
        Ok(())
    }
    fn manifest_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.events
            .push(format!("manifest {}", String::from_utf8_lossy(data)));
        Ok(())
    }
    fn progress(&mut self, done: u64) -> io::Result<()> {
        self.events.push(format!("progress {done}"));
        Ok(())
    }
}

fn options() -> BaseBackupOptions {
    BaseBackupOptions {
        label: "t".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: None,
        tablespace_map: true,
        max_rate_kbps: None,
        verify_checksums: true,
        wait_for_wal_archive: false,
        server_compression: None,
        incremental: false,
    }
}

fn pg15_backup() -> Vec<u8> {
    [
        position("0/2000028", "1"),
        tablespaces(&[
            &[Some("16385"), Some("/srv/ts"), Some("10")],
            &[None, None, Some("2000")],
        ]),
        copy_out(),
        stream_msg(b'n', b"16385.tar\0/srv/ts\0"),
        stream_msg(b'd', b"ts-bytes"),
        copy_data(b""),
        stream_msg(b'p', &100i64.to_be_bytes()),
        notice("checkpoint done"),
        stream_msg(b'n', b"base.tar\0\0"),
        stream_msg(b'd', b"base1"),
        stream_msg(b'd', b"base2"),
        stream_msg(b'm', b""),
        stream_msg(b'd', b"{manifest"),
        stream_msg(b'd', b"}"),
        copy_done(),
        position("0/2000100", "1"),
        complete("BASE_BACKUP"),
        ready(),
    ]
    .concat()
}

#[tokio::test]
async fn pg15_base_backup_is_dispatched_in_order() {
    let (client, server) = connect("15.4", Auth::Trust, None, vec![pg15_backup()]).await;
    let mut client = client.unwrap();
    assert_eq!(client.server_version_num(), 150004);
    assert_eq!(client.parameter("integer_datetimes"), Some("on"));
    assert_eq!(client.parameter("nope"), None);
    let mut sink = Recorder::default();
    let end = client.base_backup(&options(), &mut sink).await.unwrap();
    assert_eq!(
        end,
        BaseBackupEnd {
            start_lsn: "0/2000028".parse().unwrap(),
            start_tli: 1,
            end_lsn: "0/2000100".parse().unwrap(),
            end_tli: 1
        }
    );
    assert_eq!(
        sink.events,
        [
            "begin 0/2000028 1 [Some(16385)/Some(\"/srv/ts\")/Some(10), None/None/Some(2000)]",
            "start 16385.tar Some(\"/srv/ts\")",
            "data ts-bytes",
            "progress 100",
            "end",
            "start base.tar None",
            "data base1",
            "data base2",
            "end",
            "manifest {manifest",
            "manifest }",
        ]
    );
    client.close().await.unwrap();
    let (startup, queries) = server.await.unwrap();
    assert_eq!(
        queries,
        ["BASE_BACKUP ( LABEL 't', PROGRESS, CHECKPOINT 'fast', WAIT false, MANIFEST 'yes', TABLESPACE_MAP )"]
    );
    let get = |k: &str| {
        startup
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("replication"), Some("true"));
    assert_eq!(get("user"), Some("bob"));
    assert_eq!(get("database"), Some("db"));
    assert_eq!(get("application_name"), Some("pgbak-test"));
    assert_eq!(get("options"), Some("-c wal_sender_timeout=0"));
    assert_eq!(get("client_encoding"), Some("UTF8"));
}

#[tokio::test]
async fn pg14_base_backup_uses_one_copy_stream_per_archive() {
    let script = [
        position("0/3000028", "2"),
        tablespaces(&[&[Some("16385"), Some("/srv/ts"), None], &[None, None, None]]),
        copy_out(),
        copy_data(b"ts"),
        copy_done(),
        copy_out(),
        copy_data(b"b1"),
        copy_data(b""),
        copy_data(b"b2"),
        copy_done(),
        copy_out(),
        copy_data(b"{m}"),
        copy_done(),
        position("0/3000100", "2"),
        complete("BASE_BACKUP"),
        ready(),
    ]
    .concat();
    let (client, server) = connect("14.10 (Debian 14.10-1)", Auth::Trust, None, vec![script]).await;
    let mut client = client.unwrap();
    assert_eq!(client.server_version_num(), 140010);
    let mut sink = Recorder::default();
    let end = client.base_backup(&options(), &mut sink).await.unwrap();
    assert_eq!(end.start_tli, 2);
    assert_eq!(end.end_lsn, "0/3000100".parse().unwrap());
    assert_eq!(
        sink.events,
        [
            "begin 0/3000028 2 [Some(16385)/Some(\"/srv/ts\")/None, None/None/None]",
            "start 16385.tar Some(\"/srv/ts\")",
            "data ts",
            "progress 2",
            "end",
            "start base.tar None",
            "data b1",
            "progress 4",
            "data b2",
            "progress 6",
            "end",
            "manifest {m}",
        ]
    );
    drop(client);
    let (_, queries) = server.await.unwrap();
    assert_eq!(
        queries,
        ["BASE_BACKUP LABEL 't' PROGRESS FAST NOWAIT MANIFEST 'yes' TABLESPACE_MAP"]
    );
}

#[tokio::test]
async fn server_error_mid_backup_is_reported_and_connection_stays_usable() {
    let script = [
        position("0/2000028", "1"),
        tablespaces(&[&[None, None, None]]),
        copy_out(),
        stream_msg(b'n', b"base.tar\0\0"),
        stream_msg(b'd', b"partial"),
        error("58P01", "could not open file \"base/1/1234\""),
        ready(),
    ]
    .concat();
    let show = [
        row_desc(&["wal_segment_size"]),
        data_row(&[Some("16MB")]),
        complete("SHOW"),
        ready(),
    ]
    .concat();
    let (client, server) = connect("16.1", Auth::Trust, None, vec![script, show]).await;
    let mut client = client.unwrap();
    let mut sink = Recorder::default();
    let err = client.base_backup(&options(), &mut sink).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("58P01"));
    assert!(err.to_string().contains("could not open file"), "{err}");
    assert_eq!(sink.events.last().map(String::as_str), Some("data partial"));
    assert_eq!(client.wal_segment_size().await.unwrap(), 16 << 20);
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn missing_archive_or_manifest_is_a_protocol_error() {
    let no_second_archive = [
        position("0/2000028", "1"),
        tablespaces(&[&[Some("16385"), Some("/srv/ts"), None], &[None, None, None]]),
        copy_out(),
        stream_msg(b'n', b"base.tar\0\0"),
        stream_msg(b'm', b""),
        stream_msg(b'd', b"{}"),
        copy_done(),
        position("0/2000100", "1"),
        complete("BASE_BACKUP"),
        ready(),
    ]
    .concat();
    let no_manifest = [
        position("0/2000028", "1"),
        tablespaces(&[&[None, None, None]]),
        copy_out(),
        stream_msg(b'n', b"base.tar\0\0"),
        copy_done(),
        position("0/2000100", "1"),
        complete("BASE_BACKUP"),
        ready(),
    ]
    .concat();
    let (client, server) = connect(
        "15.0",
        Auth::Trust,
        None,
        vec![no_second_archive, no_manifest],
    )
    .await;
    let mut client = client.unwrap();
    let err = client
        .base_backup(&options(), &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("announced 2 tablespaces but sent 1 archives"),
        "{err}"
    );
    assert!(err.to_string().contains("server fake:5432"), "{err}");
    let err = client
        .base_backup(&options(), &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no manifest"), "{err}");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn hostile_archive_name_is_refused() {
    let script = [
        position("0/2000028", "1"),
        tablespaces(&[&[None, None, None]]),
        copy_out(),
        stream_msg(b'n', b"../../x.tar\0\0"),
    ]
    .concat();
    let (client, _server) = connect("15.0", Auth::Trust, None, vec![script]).await;
    let mut client = client.unwrap();
    let mut sink = Recorder::default();
    let err = client.base_backup(&options(), &mut sink).await.unwrap_err();
    assert!(err.to_string().contains("not a plain file name"), "{err}");
    assert_eq!(sink.events.len(), 1, "only begin: {:?}", sink.events);
    // The exchange was abandoned half-way: the connection refuses further use.
    let err = client.show("x").await.unwrap_err();
    assert!(matches!(err, Error::ConnectionBroken { .. }), "{err}");
}

#[tokio::test]
async fn sink_failure_aborts_and_breaks_the_connection() {
    let (client, _server) = connect("15.0", Auth::Trust, None, vec![pg15_backup()]).await;
    let mut client = client.unwrap();
    let mut sink = Recorder {
        fail_on_data: true,
        ..Default::default()
    };
    let err = client.base_backup(&options(), &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("16385.tar") && err.to_string().contains("disk full"),
        "{err}"
    );
    assert!(matches!(
        client.identify_system().await.unwrap_err(),
        Error::ConnectionBroken { .. }
    ));
}

#[tokio::test]
async fn connection_closed_mid_stream() {
    let script = [
        position("0/2000028", "1"),
        tablespaces(&[&[None, None, None]]),
        copy_out(),
        stream_msg(b'n', b"base.tar\0\0"),
        HANG_UP.to_vec(),
    ]
    .concat();
    let (client, server) = connect("15.0", Auth::Trust, None, vec![script]).await;
    let mut client = client.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        client.base_backup(&options(), &mut Recorder::default()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.to_string().contains("closed the connection"), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn identify_system_show_and_query_errors() {
    let identify = result_set(
        &["systemid", "timeline", "xlogpos", "dbname"],
        &[&[
            Some("7312345678901234567"),
            Some("3"),
            Some("0/1A2B3C4"),
            None,
        ]],
    );
    let bad = [error("42601", "syntax error"), ready()].concat();
    let multi = [
        result_set(&["a"], &[&[Some("1")]]),
        result_set(&["b"], &[&[None], &[Some("x")]]),
        ready(),
    ]
    .concat();
    let (client, server) = connect(
        "17devel",
        Auth::Trust,
        None,
        vec![[identify, ready()].concat(), bad, multi],
    )
    .await;
    let mut client = client.unwrap();
    assert_eq!(client.server_version_num(), 170000);
    assert_eq!(
        client.identify_system().await.unwrap(),
        IdentifySystem {
            systemid: "7312345678901234567".into(),
            timeline: 3,
            xlogpos: "0/1A2B3C4".parse().unwrap(),
            dbname: None
        }
    );
    let err = client.simple_query("BOGUS").await.unwrap_err();
    assert!(
        matches!(&err, Error::Server { error, .. } if error.message == "syntax error"),
        "{err}"
    );
    assert_eq!(
        client.simple_query("SELECT 1; SELECT 2").await.unwrap(),
        vec![
            vec![Some("1".to_string())],
            vec![None],
            vec![Some("x".to_string())]
        ]
    );
    // Setting names are checked before anything is sent.
    assert!(matches!(
        client.show("a; DROP").await.unwrap_err(),
        Error::InvalidOption { .. }
    ));
    assert!(matches!(
        client.show("").await.unwrap_err(),
        Error::InvalidOption { .. }
    ));
    drop(client);
    let (_, queries) = server.await.unwrap();
    assert_eq!(queries, ["IDENTIFY_SYSTEM", "BOGUS", "SELECT 1; SELECT 2"]);
}

#[tokio::test]
async fn base_backup_refuses_old_servers_without_sending() {
    let (client, server) = connect("12.17", Auth::Trust, None, vec![]).await;
    let mut client = client.unwrap();
    let err = client
        .base_backup(&options(), &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedServerVersion { .. }),
        "{err}"
    );
    drop(client);
    let (_, queries) = server.await.unwrap();
    assert!(queries.is_empty());
}

#[tokio::test]
async fn password_authentication() {
    let (client, _s) = connect("15.0", Auth::Cleartext("pw"), Some("pw"), vec![]).await;
    client.unwrap();
    let (client, _s) = connect("15.0", Auth::Md5("pw"), Some("pw"), vec![]).await;
    client.unwrap();

    let (client, _s) = connect("15.0", Auth::Cleartext("pw"), Some("wrong"), vec![]).await;
    let err = client.err().unwrap();
    assert!(
        matches!(&err, Error::Authentication { user, .. } if user == "bob"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("password authentication failed for user \"bob\""),
        "{err}"
    );
    let (client, _s) = connect("15.0", Auth::Md5("pw"), Some("wrong"), vec![]).await;
    assert!(matches!(
        client.err().unwrap(),
        Error::Authentication { .. }
    ));

    for kind in [
        Auth::Cleartext("pw"),
        Auth::Md5("pw"),
        Auth::Sasl(&["SCRAM-SHA-256"]),
    ] {
        let (client, _s) = connect("15.0", kind, None, vec![]).await;
        let err = client.err().unwrap();
        assert!(matches!(err, Error::PasswordRequired { .. }), "{err}");
    }
}

#[tokio::test]
async fn unsupported_authentication_methods() {
    let (client, _s) = connect("15.0", Auth::Gss, Some("pw"), vec![]).await;
    let err = client.err().unwrap();
    assert!(
        matches!(&err, Error::UnsupportedAuthentication { method, .. } if method == "GSSAPI"),
        "{err}"
    );
    let (client, _s) = connect(
        "15.0",
        Auth::Sasl(&["SCRAM-SHA-256-PLUS"]),
        Some("pw"),
        vec![],
    )
    .await;
    let err = client.err().unwrap();
    assert!(err.to_string().contains("SCRAM-SHA-256-PLUS"), "{err}");
}

#[tokio::test]
async fn connect_timeout_is_honoured() {
    // A listener that accepts but never answers the startup packet.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(sock);
    });
    let p = ConnParams {
        host: "127.0.0.1".into(),
        port,
        connect_timeout: Some(Duration::from_secs(2)),
        ..params(None)
    };
    let started = std::time::Instant::now();
    let err = ReplicationClient::connect(&p).await.err().unwrap();
    assert!(
        matches!(err, Error::ConnectTimeout { seconds: 2, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    hold.abort();
}

/// Callers drive the client from spawned tasks: its futures must be `Send` (BASE_BACKUP's is not,
/// because the sink is a plain `dyn BaseBackupSink`).
#[allow(dead_code)]
fn futures_are_send(client: &mut ReplicationClient, p: &ConnParams) {
    fn is_send<T: Send>(_: T) {}
    is_send(ReplicationClient::connect(p));
    is_send(client.simple_query("SELECT 1"));
    is_send(client.identify_system());
    is_send(client.show("x"));
    is_send(client.wal_segment_size());
}
