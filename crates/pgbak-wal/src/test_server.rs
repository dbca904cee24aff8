//! A scripted replication server on an in-memory pipe, for the tests of WAL streaming: it plays a
//! list of steps (expect a query, send bytes, wait for a status update...) and records what the
//! client sent, so that tests assert exact message sequences without a real PostgreSQL.

use crate::protocol::stream::StandbyStatusUpdate;
use crate::{ConnParams, ReplicationClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A backend message: tag, length, body.
pub(crate) fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
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

/// ReadyForQuery (idle).
pub(crate) fn ready() -> Vec<u8> {
    frame(b'Z', b"I")
}

/// CommandComplete with `tag`.
pub(crate) fn complete(tag: &str) -> Vec<u8> {
    frame(b'C', &cstrs(&[tag]))
}

/// A result set of text columns, ended by CommandComplete.
pub(crate) fn result_set(names: &[&str], rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
    let mut desc = (names.len() as u16).to_be_bytes().to_vec();
    for n in names {
        desc.extend_from_slice(n.as_bytes());
        desc.push(0);
        desc.extend_from_slice(&[0; 6]);
        desc.extend_from_slice(&25u32.to_be_bytes());
        desc.extend_from_slice(&(-1i16).to_be_bytes());
        desc.extend_from_slice(&(-1i32).to_be_bytes());
        desc.extend_from_slice(&[0; 2]);
    }
    let mut out = frame(b'T', &desc);
    for r in rows {
        let mut b = (r.len() as u16).to_be_bytes().to_vec();
        for c in r.iter() {
            match c {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(s) => {
                    b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    b.extend_from_slice(s);
                }
            }
        }
        out.extend(frame(b'D', &b));
    }
    out.extend(complete("SELECT 1"));
    out
}

/// ErrorResponse.
pub(crate) fn error(code: &str, msg: &str) -> Vec<u8> {
    let mut body = cstrs(&["SERROR", "VERROR", &format!("C{code}"), &format!("M{msg}")]);
    body.push(0);
    frame(b'E', &body)
}

/// CopyBothResponse as a walsender sends it.
pub(crate) fn copy_both() -> Vec<u8> {
    frame(b'W', &[0, 0, 0])
}

/// CopyDone.
pub(crate) fn copy_done() -> Vec<u8> {
    frame(b'c', &[])
}

/// An XLogData CopyData message.
pub(crate) fn xlog_data(start: u64, data: &[u8]) -> Vec<u8> {
    let mut p = vec![b'w'];
    p.extend_from_slice(&start.to_be_bytes());
    p.extend_from_slice(&(start + data.len() as u64).to_be_bytes());
    p.extend_from_slice(&0i64.to_be_bytes());
    p.extend_from_slice(data);
    frame(b'd', &p)
}

/// A keepalive CopyData message.
pub(crate) fn keepalive(end: u64, reply: bool) -> Vec<u8> {
    let mut p = vec![b'k'];
    p.extend_from_slice(&end.to_be_bytes());
    p.extend_from_slice(&0i64.to_be_bytes());
    p.push(u8::from(reply));
    frame(b'd', &p)
}

/// One thing the scripted server does.
pub(crate) enum Step {
    /// Reads client messages until a query arrives; it must be exactly this text.
    Query(String),
    /// Sends bytes.
    Send(Vec<u8>),
    /// Reads client messages until a status update with at least this flush position arrives.
    WaitFlush(u64),
    /// Reads client messages until a status update arrives.
    WaitStatus,
    /// Reads client messages until a status update asking for a reply arrives.
    WaitPing,
    /// Reads client messages until CopyDone arrives.
    WaitCopyDone,
    /// Waits before the next step.
    Pause(std::time::Duration),
    /// Closes the connection.
    HangUp,
}

/// What the client sent.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Queries, in order.
    pub queries: Vec<String>,
    /// Status updates, in order.
    pub statuses: Vec<StandbyStatusUpdate>,
    /// CopyDone messages received.
    pub copy_dones: usize,
}

/// Called with every status update as it arrives.
pub(crate) type StatusCheck = Box<dyn FnMut(&StandbyStatusUpdate) + Send>;

enum Client {
    Query(String),
    Status,
    CopyDone,
    Gone,
}

async fn read_client(s: &mut DuplexStream, rec: &mut Recorded, check: &mut StatusCheck) -> Client {
    let mut head = [0u8; 5];
    if s.read_exact(&mut head).await.is_err() {
        return Client::Gone;
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0; len - 4];
    if s.read_exact(&mut body).await.is_err() {
        return Client::Gone;
    }
    match head[0] {
        b'Q' => Client::Query(String::from_utf8(body[..body.len() - 1].to_vec()).unwrap()),
        b'd' => {
            let u =
                StandbyStatusUpdate::decode(&body).expect("the client only sends status updates");
            check(&u);
            rec.statuses.push(u);
            Client::Status
        }
        b'c' => {
            rec.copy_dones += 1;
            Client::CopyDone
        }
        b'X' => Client::Gone,
        other => panic!("unexpected frontend message {}", char::from(other)),
    }
}

/// Plays `steps` after a trust startup announcing `version`; returns what the client sent.
pub(crate) async fn serve(
    mut s: DuplexStream,
    version: &str,
    steps: Vec<Step>,
    mut check: StatusCheck,
) -> Recorded {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut startup = vec![0; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut startup).await.unwrap();
    let mut hello = frame(b'R', &0i32.to_be_bytes());
    hello.extend(frame(b'S', &cstrs(&["server_version", version])));
    hello.extend(ready());
    s.write_all(&hello).await.unwrap();

    let mut rec = Recorded::default();
    for step in steps {
        match step {
            Step::Query(want) => loop {
                match read_client(&mut s, &mut rec, &mut check).await {
                    Client::Query(q) => {
                        assert_eq!(q, want, "query");
                        rec.queries.push(q);
                        break;
                    }
                    Client::Gone => panic!("client hung up while the server expected {want:?}"),
                    _ => {}
                }
            },
            Step::Send(bytes) => {
                if s.write_all(&bytes).await.is_err() {
                    return rec;
                }
            }
            Step::WaitFlush(min) => loop {
                match read_client(&mut s, &mut rec, &mut check).await {
                    Client::Status if rec.statuses.last().is_some_and(|u| u.flush.0 >= min) => {
                        break
                    }
                    Client::Gone => panic!("client hung up before reporting flush {min:X}"),
                    _ => {}
                }
            },
            Step::WaitStatus => loop {
                match read_client(&mut s, &mut rec, &mut check).await {
                    Client::Status => break,
                    Client::Gone => panic!("client hung up before a status update"),
                    _ => {}
                }
            },
            Step::WaitPing => loop {
                match read_client(&mut s, &mut rec, &mut check).await {
                    Client::Status if rec.statuses.last().is_some_and(|u| u.reply_requested) => {
                        break
                    }
                    Client::Gone => panic!("client hung up before asking for a reply"),
                    _ => {}
                }
            },
            Step::WaitCopyDone => loop {
                match read_client(&mut s, &mut rec, &mut check).await {
                    Client::CopyDone => break,
                    Client::Gone => panic!("client hung up before CopyDone"),
                    _ => {}
                }
            },
            Step::Pause(d) => tokio::time::sleep(d).await,
            Step::HangUp => return rec,
        }
    }
    while !matches!(
        read_client(&mut s, &mut rec, &mut check).await,
        Client::Gone
    ) {}
    rec
}

/// Connects a client to a scripted server.
pub(crate) async fn connect(
    version: &str,
    steps: Vec<Step>,
    check: StatusCheck,
) -> (ReplicationClient, tokio::task::JoinHandle<Recorded>) {
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    let version = version.to_string();
    let server = tokio::spawn(async move { serve(server_end, &version, steps, check).await });
    let params = ConnParams {
        host: "fake".into(),
        server_name: Some("fake".into()),
        port: 5432,
        user: "bob".into(),
        dbname: "db".into(),
        password: None,
        application_name: None,
        connect_timeout: None,
        options: None,
        ssl: crate::conninfo::SslParams::default(),
    };
    let client = ReplicationClient::from_socket(Box::new(client_end), &params)
        .await
        .expect("startup");
    (client, server)
}
