//! The replication client's TLS against a small PostgreSQL-speaking server on a loopback port,
//! with real certificates made here (rcgen) and rustls on the server side: SSLRequest answers,
//! direct negotiation with ALPN, what each sslmode checks, client certificates, revocation lists,
//! the sslmode fallbacks and the SCRAM-SHA-256-PLUS channel binding the client sends.

use super::*;
use crate::ReplicationClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, TcpStream};

/// A CA, a certificate for the server and one for the client, as files in a folder.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

const SERVER_SERIAL: u64 = 4242;

impl Pki {
    fn new(server_names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "pgbak test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(
            server_names
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        sp.serial_number = Some(SerialNumber::from(SERVER_SERIAL));
        let server_cert = sp.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name = DistinguishedName::new();
        cp.distinguished_name.push(DnType::CommonName, "bob");
        let client_cert = cp.signed_by(&client_key, &issuer).unwrap();

        let crl = |revoked: Vec<RevokedCertParams>| {
            CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2020, 1, 1),
                next_update: rcgen::date_time_ymd(2100, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: revoked,
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)
            .unwrap()
            .pem()
            .unwrap()
        };
        let revoked = crl(vec![RevokedCertParams {
            serial_number: SerialNumber::from(SERVER_SERIAL),
            revocation_time: rcgen::date_time_ymd(2021, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }]);
        let clean = crl(vec![]);

        let write = |name: &str, body: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("root.crt", &ca_cert.pem(), 0o644);
        write("client.crt", &client_cert.pem(), 0o644);
        write("client.key", &client_key.serialize_pem(), 0o600);
        write("revoked.crl", &revoked, 0o644);
        write("clean.crl", &clean, 0o644);
        std::fs::create_dir(dir.path().join("crls")).unwrap();
        write("crls/revoked.r0", &revoked, 0o644);
        // A root nobody signed anything with.
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        write(
            "other-root.crt",
            &other.self_signed(&other_key).unwrap().pem(),
            0o644,
        );

        Pki {
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn server_config(&self, client_auth: bool, alpn: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap();
        let builder = if client_auth {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut cfg = builder
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .unwrap();
        if alpn {
            cfg.alpn_protocols = vec![b"postgresql".to_vec()];
        }
        Arc::new(cfg)
    }
}

/// How the fake server answers.
#[derive(Clone)]
struct ServerOpts {
    /// Answer SSLRequest with `S` and this configuration, or `N` when `None`.
    tls: Option<Arc<ServerConfig>>,
    /// Accept a TLS handshake without SSLRequest (PostgreSQL 17); else such a connection is
    /// closed, as older servers do.
    direct: bool,
    /// Refuse cleartext sessions with an ErrorResponse (a `hostssl`-only pg_hba.conf).
    reject_plain: bool,
    /// Ask for SCRAM with these mechanisms instead of trusting.
    sasl: Option<Vec<&'static str>>,
}

impl ServerOpts {
    fn tls(cfg: Arc<ServerConfig>) -> Self {
        ServerOpts {
            tls: Some(cfg),
            direct: false,
            reject_plain: false,
            sasl: None,
        }
    }

    fn plain() -> Self {
        ServerOpts {
            tls: None,
            direct: false,
            reject_plain: false,
            sasl: None,
        }
    }
}

/// What one connection looked like from the server.
#[derive(Debug, Default, Clone)]
struct Seen {
    ssl_request: bool,
    encrypted: bool,
    direct: bool,
    startup: bool,
    tls_version: Option<rustls::ProtocolVersion>,
    sni: Option<String>,
    client_cert: bool,
    mechanism: Option<String>,
    client_first: Option<String>,
    client_final: Option<String>,
}

type Io = Box<dyn Socket>;
trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

async fn read_frame(s: &mut Io) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0; len - 4];
    s.read_exact(&mut body).await.ok()?;
    Some((head[0], body))
}

fn hello() -> Vec<u8> {
    let mut v = frame(b'R', &0i32.to_be_bytes());
    v.extend(frame(b'S', b"server_version\x0015.0\x00"));
    v.extend(frame(b'Z', b"I"));
    v
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn tls_accept(cfg: Arc<ServerConfig>, tcp: TcpStream, seen: &mut Seen) -> Option<Io> {
    let tls = tokio_rustls::TlsAcceptor::from(cfg)
        .accept(tcp)
        .await
        .ok()?;
    let (_, conn) = tls.get_ref();
    seen.encrypted = true;
    seen.tls_version = conn.protocol_version();
    seen.sni = conn.server_name().map(str::to_string);
    seen.client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
    Some(Box::new(tls))
}

/// Serves one connection.
async fn serve_one(tcp: TcpStream, opts: &ServerOpts) -> Seen {
    let mut seen = Seen::default();
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await.unwrap_or(0) == 0 {
        return seen;
    }
    let mut s: Io = if first[0] == 0x16 {
        seen.direct = true;
        match (&opts.tls, opts.direct) {
            (Some(cfg), true) => match tls_accept(cfg.clone(), tcp, &mut seen).await {
                Some(s) => s,
                None => return seen,
            },
            // PostgreSQL before 17 reads the ClientHello as a startup packet length and hangs up.
            _ => return seen,
        }
    } else {
        let mut tcp = tcp;
        let mut head = [0u8; 8];
        if tcp.peek(&mut head).await.unwrap_or(0) == 8 && head == SSL_REQUEST {
            tcp.read_exact(&mut head).await.unwrap();
            seen.ssl_request = true;
            match &opts.tls {
                Some(cfg) => {
                    tcp.write_all(b"S").await.unwrap();
                    match tls_accept(cfg.clone(), tcp, &mut seen).await {
                        Some(s) => s,
                        None => return seen,
                    }
                }
                None => {
                    tcp.write_all(b"N").await.unwrap();
                    Box::new(tcp)
                }
            }
        } else {
            Box::new(tcp)
        }
    };
    // The startup packet.
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).await.is_err() {
        return seen;
    }
    let mut body = vec![0; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut body).await.unwrap();
    seen.startup = true;
    if opts.reject_plain && !seen.encrypted {
        let e = b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry, SSL off\0\0".to_vec();
        let _ = s.write_all(&frame(b'E', &e)).await;
        return seen;
    }
    if let Some(mechs) = &opts.sasl {
        let mut b = 10i32.to_be_bytes().to_vec();
        for m in mechs {
            b.extend_from_slice(m.as_bytes());
            b.push(0);
        }
        b.push(0);
        s.write_all(&frame(b'R', &b)).await.unwrap();
        // SASLInitialResponse: mechanism, length, client-first message.
        let Some((b'p', body)) = read_frame(&mut s).await else {
            return seen;
        };
        let nul = body.iter().position(|&c| c == 0).unwrap();
        seen.mechanism = Some(String::from_utf8(body[..nul].to_vec()).unwrap());
        let first = String::from_utf8(body[nul + 5..].to_vec()).unwrap();
        let nonce = first.split("r=").nth(1).unwrap().to_string();
        seen.client_first = Some(first);
        let server_first = format!("r={nonce}srvnonce,s={},i=4096", base64(b"saltsalt"));
        let mut b = 11i32.to_be_bytes().to_vec();
        b.extend_from_slice(server_first.as_bytes());
        s.write_all(&frame(b'R', &b)).await.unwrap();
        if let Some((b'p', body)) = read_frame(&mut s).await {
            seen.client_final = Some(String::from_utf8(body).unwrap());
        }
        return seen;
    }
    s.write_all(&hello()).await.unwrap();
    while let Some((tag, _)) = read_frame(&mut s).await {
        if tag == b'X' {
            break;
        }
    }
    seen
}

/// A server on a loopback port serving `n` connections; returns its port and what it saw.
async fn server(opts: ServerOpts, n: usize) -> (u16, tokio::task::JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let (tcp, _) = listener.accept().await.unwrap();
            out.push(serve_one(tcp, &opts).await);
        }
        out
    });
    (port, task)
}

fn params(conninfo: &str, home: Option<&Path>) -> ConnParams {
    let env = |_: &str| None;
    let mut p = ConnParams::resolve_with(conninfo, &env, home).unwrap();
    p.connect_timeout = Some(std::time::Duration::from_secs(20));
    p
}

async fn connect(conninfo: &str, home: Option<&Path>) -> Result<ReplicationClient> {
    ReplicationClient::connect(&params(conninfo, home)).await
}

fn base(port: u16, extra: &str) -> String {
    format!("host=localhost hostaddr=127.0.0.1 port={port} user=bob dbname=db {extra}")
}

#[tokio::test]
async fn require_encrypts_and_refuses_a_server_without_ssl() {
    let pki = Pki::new(&["localhost"]);
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    let client = connect(&base(port, "sslmode=require"), None).await.unwrap();
    assert!(client.is_encrypted());
    client.close().await.unwrap();
    let seen = task.await.unwrap();
    assert!(seen[0].ssl_request && seen[0].encrypted && seen[0].startup);
    // rustls sends ALPN and SNI like libpq 17.
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"));

    let (port, task) = server(ServerOpts::plain(), 1).await;
    let err = connect(&base(port, "sslmode=require"), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::TlsRequired {
                sslmode: SslMode::Require,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not support SSL"), "{err}");
    let seen = task.await.unwrap();
    // The startup packet (user name, database) never went out in cleartext.
    assert!(seen[0].ssl_request && !seen[0].startup);
}

#[tokio::test]
async fn prefer_falls_back_as_libpq_does() {
    // Server without SSL: cleartext on the same connection.
    let (port, task) = server(ServerOpts::plain(), 1).await;
    let client = connect(&base(port, ""), None).await.unwrap();
    assert!(!client.is_encrypted());
    client.close().await.unwrap();
    let seen = task.await.unwrap();
    assert!(seen[0].ssl_request && seen[0].startup && !seen[0].encrypted);

    // A handshake that fails (root.crt in the home directory does not match): a second
    // connection in cleartext.
    let pki = Pki::new(&["localhost"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(
        pki.path("other-root.crt"),
        home.path().join(".postgresql/root.crt"),
    )
    .unwrap();
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 2).await;
    let client = connect(&base(port, "sslmode=prefer"), Some(home.path()))
        .await
        .unwrap();
    assert!(!client.is_encrypted());
    client.close().await.unwrap();
    let seen = task.await.unwrap();
    assert!(!seen[0].startup && !seen[1].ssl_request && seen[1].startup);

    // The same with require: refused, no second attempt.
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    let err = connect(&base(port, "sslmode=require"), Some(home.path()))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("not signed by a trusted root certificate"),
        "{err}"
    );
    assert_eq!(task.await.unwrap().len(), 1);
}

#[tokio::test]
async fn allow_retries_with_tls_when_cleartext_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let opts = ServerOpts {
        reject_plain: true,
        ..ServerOpts::tls(pki.server_config(false, false))
    };
    let (port, task) = server(opts, 2).await;
    let client = connect(&base(port, "sslmode=allow"), None).await.unwrap();
    assert!(client.is_encrypted());
    client.close().await.unwrap();
    let seen = task.await.unwrap();
    assert!(!seen[0].ssl_request && seen[0].startup && !seen[0].encrypted);
    assert!(seen[1].ssl_request && seen[1].encrypted);

    // disable never tries TLS.
    let opts = ServerOpts {
        reject_plain: true,
        ..ServerOpts::tls(pki.server_config(false, false))
    };
    let (port, task) = server(opts, 1).await;
    let err = connect(&base(port, "sslmode=disable"), None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("SSL off"), "{err}");
    assert!(!task.await.unwrap()[0].ssl_request);
}

#[tokio::test]
async fn verify_ca_and_verify_full_check_what_libpq_checks() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let cfg = pki.server_config(false, false);
    let root = pki.p("root.crt");
    let other = pki.p("other-root.crt");
    type Case = (String, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (format!("sslmode=verify-ca sslrootcert={root}"), None),
        (format!("sslmode=verify-full sslrootcert={root}"), None),
        (
            format!("sslmode=verify-ca sslrootcert={other}"),
            Some("not signed by a trusted root certificate"),
        ),
        (
            format!("sslmode=verify-full sslrootcert={other}"),
            Some("not signed by a trusted root certificate"),
        ),
        (
            format!("sslmode=verify-ca sslrootcert={}", pki.p("missing.crt")),
            Some("does not exist"),
        ),
        // require with a root file verifies the chain too (libpq's rule).
        (
            format!("sslmode=require sslrootcert={other}"),
            Some("not signed by a trusted root certificate"),
        ),
        // require without a root file verifies nothing.
        (
            format!("sslmode=require sslrootcert={}", pki.p("missing.crt")),
            None,
        ),
        (
            format!(
                "sslmode=verify-full sslrootcert={root} sslcrl={}",
                pki.p("revoked.crl")
            ),
            Some("revoked"),
        ),
        (
            format!(
                "sslmode=verify-full sslrootcert={root} sslcrl={}",
                pki.p("clean.crl")
            ),
            None,
        ),
        (
            format!(
                "sslmode=verify-full sslrootcert={root} sslcrl={}",
                pki.p("none.crl")
            ),
            Some("could not read certificate revocation list"),
        ),
        (
            format!(
                "sslmode=verify-full sslrootcert={root} sslcrldir={}",
                pki.p("crls")
            ),
            Some("revoked"),
        ),
    ];
    for (extra, want) in cases {
        let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
        let result = connect(&base(port, &extra), None).await;
        match (want, result) {
            (None, Ok(c)) => {
                assert!(c.is_encrypted(), "{extra}");
                c.close().await.unwrap();
            }
            (None, Err(e)) => panic!("{extra}: {e}"),
            (Some(w), Ok(_)) => panic!("{extra}: connected, expected {w}"),
            (Some(w), Err(e)) => {
                assert!(e.to_string().contains(w), "{extra}: {e}");
                assert!(matches!(e, Error::Tls { .. }), "{extra}: {e:?}");
            }
        }
        let seen = task.await.unwrap();
        // Nothing was sent in cleartext after a refusal.
        assert!(seen.iter().all(|s| !s.startup || s.encrypted), "{extra}");
    }

    // verify-full checks the host name given by `host`, not the address connected to.
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} user=bob sslmode=verify-full sslrootcert={root}"
    );
    let err = connect(&ci, None).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("does not match host name \"wrong.example\""),
        "{err}"
    );
    assert!(!task.await.unwrap()[0].startup);
    // ... and verify-ca does not.
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} user=bob sslmode=verify-ca sslrootcert={root}"
    );
    connect(&ci, None).await.unwrap().close().await.unwrap();
    task.await.unwrap();
    // An IP address is checked against the certificate's IP entries.
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!("host=127.0.0.1 port={port} user=bob sslmode=verify-full sslrootcert={root}");
    connect(&ci, None).await.unwrap().close().await.unwrap();
    task.await.unwrap();
    // hostaddr alone gives verify-full nothing to check.
    let ci = format!("hostaddr=127.0.0.1 port=1 user=bob sslmode=verify-full sslrootcert={root}");
    let (port, task) = server(ServerOpts::tls(cfg), 1).await;
    let err = connect(&ci.replace("port=1", &format!("port={port}")), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("host name must be specified"),
        "{err}"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn default_files_in_the_home_directory() {
    let pki = Pki::new(&["localhost"]);
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".postgresql");
    // verify-ca without ~/.postgresql/root.crt.
    let (port, task) = server(ServerOpts::tls(pki.server_config(true, false)), 1).await;
    let err = connect(&base(port, "sslmode=verify-ca"), Some(home.path()))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(".postgresql/root.crt\" does not exist"),
        "{err}"
    );
    task.await.unwrap();

    std::fs::create_dir(&dot).unwrap();
    std::fs::copy(pki.path("root.crt"), dot.join("root.crt")).unwrap();
    std::fs::copy(pki.path("client.crt"), dot.join("postgresql.crt")).unwrap();
    std::fs::copy(pki.path("client.key"), dot.join("postgresql.key")).unwrap();
    std::fs::set_permissions(
        dot.join("postgresql.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::copy(pki.path("revoked.crl"), dot.join("root.crl")).unwrap();
    // The default CRL revokes the server: refused.
    let (port, task) = server(ServerOpts::tls(pki.server_config(true, false)), 1).await;
    let err = connect(&base(port, "sslmode=verify-full"), Some(home.path()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("revoked"), "{err}");
    task.await.unwrap();
    std::fs::remove_file(dot.join("root.crl")).unwrap();
    // Root, client certificate and key found by default; the server required the certificate.
    let (port, task) = server(ServerOpts::tls(pki.server_config(true, false)), 1).await;
    let c = connect(&base(port, "sslmode=verify-full"), Some(home.path()))
        .await
        .unwrap();
    c.close().await.unwrap();
    assert!(task.await.unwrap()[0].client_cert);
}

#[tokio::test]
async fn client_certificates() {
    let pki = Pki::new(&["localhost"]);
    let cfg = pki.server_config(true, false);
    let with = |key: &str| {
        format!(
            "sslmode=verify-full sslrootcert={} sslcert={} sslkey={key}",
            pki.p("root.crt"),
            pki.p("client.crt")
        )
    };
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let c = connect(&base(port, &with(&pki.p("client.key"))), None)
        .await
        .unwrap();
    c.close().await.unwrap();
    assert!(task.await.unwrap()[0].client_cert);

    // No certificate: the server refuses the handshake (with TLS 1.3 the client learns it when
    // it reads, after its encrypted startup packet).
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!("sslmode=require sslcert={}", pki.p("absent.crt"));
    let err = connect(&base(port, &ci), None).await.err().unwrap();
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    assert!(!task.await.unwrap()[0].startup);

    // A key others may read is refused before anything is sent.
    let open = pki.path("open.key");
    std::fs::copy(pki.path("client.key"), &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let err = connect(&base(port, &with(&open.display().to_string())), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("has group or world access"),
        "{err}"
    );
    task.await.unwrap();

    // A key of another certificate, a missing key, an encrypted key.
    let wrong = pki.path("wrong.key");
    std::fs::write(&wrong, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let enc = pki.path("enc.key");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::set_permissions(&enc, std::fs::Permissions::from_mode(0o600)).unwrap();
    for (key, want) in [
        (wrong, "does not match private key file"),
        (
            pki.path("nokey.key"),
            "certificate present, but not private key file",
        ),
        (enc, "is encrypted"),
        (pki.dir.path().to_path_buf(), "is not a regular file"),
    ] {
        let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
        let err = connect(&base(port, &with(&key.display().to_string())), None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(want), "{}: {err}", key.display());
        task.await.unwrap();
    }

    // sslcertmode=disable sends nothing; sslcertmode=require insists that the server asked.
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!("{} sslcertmode=disable", with(&pki.p("client.key")));
    assert!(connect(&base(port, &ci), None).await.is_err());
    assert!(!task.await.unwrap()[0].client_cert);
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    let ci = format!("{} sslcertmode=require", with(&pki.p("client.key")));
    let err = connect(&base(port, &ci), None).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("did not request an SSL certificate"),
        "{err}"
    );
    task.await.unwrap();
    let (port, task) = server(ServerOpts::tls(cfg), 1).await;
    let ci = format!("{} sslcertmode=require", with(&pki.p("client.key")));
    connect(&base(port, &ci), None)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    task.await.unwrap();
}

#[test]
fn key_permissions_follow_libpq() {
    use config::key_permissions_ok as ok;
    // Owned by the current user (1000): 0600 or less.
    assert!(ok(1000, 1000, 0o100600));
    assert!(ok(1000, 1000, 0o100400));
    assert!(!ok(1000, 1000, 0o100640));
    assert!(!ok(1000, 1000, 0o100604));
    // Owned by root, read by another user: 0640 or less.
    assert!(ok(0, 1000, 0o100640));
    assert!(!ok(0, 1000, 0o100660));
    assert!(!ok(0, 1000, 0o100644));
    // Root reading its own key: the stricter rule.
    assert!(ok(0, 0, 0o100600));
    assert!(!ok(0, 0, 0o100640));
    // Someone else's file is the server's problem, as with libpq.
    assert!(ok(1001, 1000, 0o100644));
}

#[tokio::test]
async fn direct_negotiation() {
    let pki = Pki::new(&["localhost"]);
    let root = pki.p("root.crt");
    // A PostgreSQL 17 server: TLS at once, ALPN "postgresql", no SSLRequest.
    let opts = ServerOpts {
        direct: true,
        ..ServerOpts::tls(pki.server_config(false, true))
    };
    let (port, task) = server(opts, 1).await;
    let ci = format!("sslmode=verify-full sslrootcert={root} sslnegotiation=direct");
    let c = connect(&base(port, &ci), None).await.unwrap();
    assert!(c.is_encrypted());
    c.close().await.unwrap();
    let seen = task.await.unwrap();
    assert!(seen[0].direct && !seen[0].ssl_request && seen[0].encrypted && seen[0].startup);

    // An older server hangs up on the ClientHello: a clear error, nothing sent in cleartext.
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, true)), 1).await;
    let err = connect(&base(port, &ci), None).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("sslnegotiation=direct needs a PostgreSQL 17"),
        "{err}"
    );
    let seen = task.await.unwrap();
    assert!(seen[0].direct && !seen[0].startup);

    // A TLS server that does not speak ALPN "postgresql" is not PostgreSQL 17.
    let opts = ServerOpts {
        direct: true,
        ..ServerOpts::tls(pki.server_config(false, false))
    };
    let (port, task) = server(opts, 1).await;
    let err = connect(&base(port, &ci), None).await.err().unwrap();
    assert!(err.to_string().contains("without ALPN"), "{err}");
    task.await.unwrap();
}

#[tokio::test]
async fn protocol_versions_and_sni() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let cfg = pki.server_config(false, false);
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let c = connect(&base(port, "sslmode=require"), None).await.unwrap();
    c.close().await.unwrap();
    assert_eq!(
        task.await.unwrap()[0].tls_version,
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = base(
        port,
        "sslmode=require ssl_max_protocol_version=TLSv1.2 sslsni=0",
    );
    connect(&ci, None).await.unwrap().close().await.unwrap();
    let seen = task.await.unwrap();
    assert_eq!(seen[0].tls_version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(seen[0].sni, None);

    // No SNI for an IP address.
    let (port, task) = server(ServerOpts::tls(cfg.clone()), 1).await;
    let ci = format!("host=127.0.0.1 port={port} user=bob sslmode=require");
    connect(&ci, None).await.unwrap().close().await.unwrap();
    assert_eq!(task.await.unwrap()[0].sni, None);

    let (port, task) = server(ServerOpts::tls(cfg), 1).await;
    let err = connect(
        &base(
            port,
            "sslmode=require ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1",
        ),
        None,
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("older than TLS 1.2"), "{err}");
    task.await.unwrap();
}

#[tokio::test]
async fn scram_binds_to_the_tls_channel() {
    let pki = Pki::new(&["localhost"]);
    let cfg = pki.server_config(false, false);
    let both = vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];
    let sasl = |tls: Option<Arc<ServerConfig>>, mechs: Vec<&'static str>| ServerOpts {
        tls,
        direct: false,
        reject_plain: false,
        sasl: Some(mechs),
    };
    let expected_binding = |gs2: &str| {
        let mut cb = gs2.as_bytes().to_vec();
        cb.extend(cert::tls_server_end_point(&pki.server_chain[0]).unwrap());
        format!("c={}", base64(&cb))
    };

    // Over TLS with PLUS offered: SCRAM-SHA-256-PLUS, bound to the server certificate's hash.
    let (port, task) = server(sasl(Some(cfg.clone()), both.clone()), 1).await;
    let err = connect(&base(port, "sslmode=require password=pw"), None)
        .await
        .err();
    assert!(err.is_some(), "the fake server never finishes SCRAM");
    let seen = task.await.unwrap();
    assert_eq!(seen[0].mechanism.as_deref(), Some("SCRAM-SHA-256-PLUS"));
    assert!(seen[0]
        .client_first
        .as_deref()
        .unwrap()
        .starts_with("p=tls-server-end-point,,"));
    let fin = seen[0].client_final.clone().unwrap();
    assert!(
        fin.starts_with(&expected_binding("p=tls-server-end-point,,")),
        "{fin}"
    );

    // channel_binding=disable over TLS: plain SCRAM with "n".
    let (port, task) = server(sasl(Some(cfg.clone()), both.clone()), 1).await;
    let _ = connect(
        &base(port, "sslmode=require password=pw channel_binding=disable"),
        None,
    )
    .await;
    let seen = task.await.unwrap();
    assert_eq!(seen[0].mechanism.as_deref(), Some("SCRAM-SHA-256"));
    assert!(seen[0].client_first.as_deref().unwrap().starts_with("n,,"));

    // TLS but no PLUS offered: "y" (the client could have bound) ...
    let (port, task) = server(sasl(Some(cfg.clone()), vec!["SCRAM-SHA-256"]), 1).await;
    let _ = connect(&base(port, "sslmode=require password=pw"), None).await;
    let seen = task.await.unwrap();
    assert!(seen[0].client_first.as_deref().unwrap().starts_with("y,,"));
    // ... which channel_binding=require refuses before sending anything.
    let (port, task) = server(sasl(Some(cfg.clone()), vec!["SCRAM-SHA-256"]), 1).await;
    let err = connect(
        &base(port, "sslmode=require password=pw channel_binding=require"),
        None,
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("did not offer"), "{err}");
    assert_eq!(task.await.unwrap()[0].mechanism, None);

    // channel_binding=require over a cleartext connection is refused.
    let (port, task) = server(sasl(None, both), 1).await;
    let err = connect(&base(port, "password=pw channel_binding=require"), None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("is not encrypted"), "{err}");
    assert_eq!(task.await.unwrap()[0].mechanism, None);

    // ... and so is a server that lets the client in without any SCRAM.
    let (port, task) = server(ServerOpts::tls(cfg), 1).await;
    let err = connect(&base(port, "sslmode=require channel_binding=require"), None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("without channel binding"), "{err}");
    task.await.unwrap();
}

#[tokio::test]
async fn system_roots_come_from_the_system_store() {
    let pki = Pki::new(&["localhost"]);
    // rustls-native-certs reads SSL_CERT_FILE first, as OpenSSL does: point "the system" at the
    // test CA. No other test of this crate reads it.
    std::env::set_var("SSL_CERT_FILE", pki.path("root.crt"));
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    // sslrootcert=system alone means verify-full.
    let c = connect(&base(port, "sslrootcert=system"), None)
        .await
        .unwrap();
    assert!(c.is_encrypted());
    c.close().await.unwrap();
    task.await.unwrap();
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    let ci =
        format!("host=wrong.example hostaddr=127.0.0.1 port={port} user=bob sslrootcert=system");
    let err = connect(&ci, None).await.err().unwrap();
    assert!(
        err.to_string().contains("does not match host name"),
        "{err}"
    );
    task.await.unwrap();
    std::env::set_var("SSL_CERT_FILE", pki.path("other-root.crt"));
    let (port, task) = server(ServerOpts::tls(pki.server_config(false, false)), 1).await;
    let err = connect(&base(port, "sslrootcert=system"), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not signed by a trusted root"),
        "{err}"
    );
    task.await.unwrap();
    std::env::remove_var("SSL_CERT_FILE");
}
