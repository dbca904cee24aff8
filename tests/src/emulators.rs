//! Object-storage emulators for the tests: moto (S3), Azurite (Azure Blob) and fake-gcs-server
//! (GCS), installed by `scripts/install-emulators.sh` and started here on a free loopback port,
//! as processes owned by the test (killed when dropped, and when the test process exits).
//!
//! [`Emulator::shared`] gives one instance of each kind per test process; [`Emulator::start`] a
//! private one that a fault test may stop, pause and restart. [`Emulator::repository`] creates a
//! bucket or container and returns what pgbak needs to reach it: a URL, typed options and the
//! standard environment variables. [`FaultProxy`] sits between pgbak and an emulator to answer
//! 503/500 to the first requests, corrupt a body in flight or cut every connection: faults the
//! emulators cannot produce.

use pgbak_storage::{CloudOptions, Secret};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Which store an emulator stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    S3,
    Azure,
    Gcs,
}

impl Kind {
    /// All three.
    pub const ALL: [Kind; 3] = [Kind::S3, Kind::Azure, Kind::Gcs];

    /// A short name for messages and test output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::S3 => "s3",
            Kind::Azure => "azure",
            Kind::Gcs => "gcs",
        }
    }
}

/// Where `scripts/install-emulators.sh` put the emulators.
pub fn emulators_dir() -> PathBuf {
    std::env::var_os("PGBAK_EMULATORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/pgbak-emulators"))
}

/// Spawns children from one thread that lives as long as the process: the children get
/// `PR_SET_PDEATHSIG`, which fires when the spawning *thread* exits, so they die with the test
/// process and not with the test thread that asked for them.
fn spawn(mut cmd: Command) -> Child {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("emulator-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl and getppid are async-signal-safe.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    let program = format!("{cmd:?}");
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("spawner alive");
    reply_rx
        .recv()
        .expect("spawner answers")
        .unwrap_or_else(|e| {
            panic!("cannot start {program}: {e} (run scripts/install-emulators.sh)")
        })
}

/// A running emulator.
pub struct Emulator {
    kind: Kind,
    port: u16,
    child: Option<Child>,
    data: tempfile::TempDir,
    persistent: bool,
    paused: bool,
    buckets: AtomicU64,
    /// Azurite over HTTPS with this certificate and key, accepting Entra ID tokens.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Emulator {
    /// The instance of `kind` shared by every test of this process (kept in memory).
    pub fn shared(kind: Kind) -> &'static Emulator {
        static S3: OnceLock<Emulator> = OnceLock::new();
        static AZ: OnceLock<Emulator> = OnceLock::new();
        static GCS: OnceLock<Emulator> = OnceLock::new();
        let cell = match kind {
            Kind::S3 => &S3,
            Kind::Azure => &AZ,
            Kind::Gcs => &GCS,
        };
        cell.get_or_init(|| {
            let e = Emulator::launch(kind, false);
            // A static is never dropped: its data folder goes when the test binary ends.
            crate::remove_at_exit(e.data.path().to_path_buf());
            e
        })
    }

    /// A private instance, for a test that stops or pauses it. Azurite and fake-gcs-server keep
    /// their data on disk, so that a restart keeps it; moto keeps everything in memory and
    /// comes back empty.
    pub fn start(kind: Kind) -> Emulator {
        Emulator::launch(kind, true)
    }

    /// A private Azurite over HTTPS (`cert`, `key`) that also accepts Entra ID bearer tokens
    /// (`--oauth basic`: issuer, audience and lifetime are checked, not the signature).
    pub fn start_azurite_https(cert: &std::path::Path, key: &std::path::Path) -> Emulator {
        Emulator::launch_with(
            Kind::Azure,
            false,
            Some((cert.to_path_buf(), key.to_path_buf())),
        )
    }

    fn launch(kind: Kind, persistent: bool) -> Emulator {
        Emulator::launch_with(kind, persistent, None)
    }

    fn launch_with(kind: Kind, persistent: bool, tls: Option<(PathBuf, PathBuf)>) -> Emulator {
        let data = tempfile::Builder::new()
            .prefix(&format!("pgbak-emu-{}-", kind.name()))
            .tempdir()
            .expect("temp dir");
        let mut e = Emulator {
            kind,
            port: crate::free_port(),
            child: None,
            data,
            persistent,
            paused: false,
            buckets: AtomicU64::new(0),
            tls,
        };
        e.run();
        e
    }

    fn run(&mut self) {
        let dir = emulators_dir();
        let port = self.port.to_string();
        let log = std::fs::File::create(self.data.path().join("emulator.log")).expect("log file");
        let mut cmd = match self.kind {
            Kind::S3 => {
                let mut c = Command::new(dir.join("venv-moto/bin/moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &port]);
                c
            }
            Kind::Azure => {
                let mut c = Command::new(dir.join("azurite/node_modules/.bin/azurite-blob"));
                c.args(["--blobHost", "127.0.0.1", "--blobPort", &port]);
                c.args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"]);
                if self.persistent {
                    c.arg("--location").arg(self.data.path().join("azurite"));
                } else {
                    c.arg("--inMemoryPersistence");
                }
                if let Some((cert, key)) = &self.tls {
                    c.arg("--cert").arg(cert).arg("--key").arg(key);
                    c.args(["--oauth", "basic"]);
                }
                c
            }
            Kind::Gcs => {
                let mut c = Command::new(dir.join("bin/fake-gcs-server"));
                let url = format!("http://127.0.0.1:{port}");
                c.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port]);
                c.args([
                    "-external-url",
                    &url,
                    "-public-host",
                    &format!("127.0.0.1:{port}"),
                ]);
                c.args(["-log-level", "error"]);
                if self.persistent {
                    c.args(["-backend", "filesystem", "-filesystem-root"]);
                    c.arg(self.data.path().join("gcs"));
                } else {
                    c.args(["-backend", "memory"]);
                }
                c
            }
        };
        cmd.current_dir(self.data.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(spawn(cmd));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.as_mut().expect("child").try_wait() {
                panic!(
                    "{} emulator exited ({status}): {}",
                    self.kind.name(),
                    self.log()
                );
            }
            let path = match self.kind {
                Kind::Gcs => "/storage/v1/b",
                _ => "/",
            };
            let up = if self.tls.is_some() {
                TcpStream::connect(self.addr()).is_ok()
            } else {
                http(self.addr(), "GET", path, &[], b"").is_ok()
            };
            if up {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} emulator does not answer: {}",
                    self.kind.name(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the emulator printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("emulator.log")).unwrap_or_default()
    }

    /// Which store it stands for.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL), as a crash or a network loss would look to pgbak.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                self.paused = false;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`Emulator::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Freezes it (SIGSTOP): connections hang, requests time out, its data stays.
    pub fn pause(&mut self) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGSTOP) };
            self.paused = true;
        }
    }

    /// Unfreezes it (SIGCONT).
    pub fn resume(&mut self) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            self.paused = false;
        }
    }

    /// A fresh bucket or container name.
    pub fn unique_bucket(&self) -> String {
        let n = self.buckets.fetch_add(1, Ordering::SeqCst);
        format!("pgbak-{}-{}-{n}", std::process::id(), self.port)
    }

    /// The environment that lets pgbak (or any official tool) reach this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        let v = |a: &str, b: &str| (a.to_string(), b.to_string());
        match self.kind {
            Kind::S3 => vec![
                v("AWS_ACCESS_KEY_ID", "pgbak-test"),
                v("AWS_SECRET_ACCESS_KEY", "pgbak-test-secret"),
                v("AWS_REGION", "us-east-1"),
                v("AWS_ENDPOINT_URL", &self.endpoint()),
                v("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            Kind::Azure => vec![v(
                "AZURE_STORAGE_CONNECTION_STRING",
                &self.connection_string(AZURITE_KEY),
            )],
            Kind::Gcs => vec![v("STORAGE_EMULATOR_HOST", &self.endpoint())],
        }
    }

    /// Azurite's connection string with `key`.
    pub fn connection_string(&self, key: &str) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};\
             BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint()
        )
    }

    /// Options equivalent to [`Emulator::env`], for tests that open a backend in process.
    pub fn options(&self) -> CloudOptions {
        let mut o = CloudOptions::default();
        match self.kind {
            Kind::S3 => {
                o.endpoint_url = Some(self.endpoint());
                o.aws_region = Some("us-east-1".into());
                o.aws_access_key_id = Some("pgbak-test".into());
                o.aws_secret_access_key = Some(Secret::new("pgbak-test-secret"));
            }
            Kind::Azure => {
                o.azure_connection_string = Some(Secret::new(self.connection_string(AZURITE_KEY)));
            }
            Kind::Gcs => o.gcs_emulator_host = Some(self.endpoint()),
        }
        o
    }

    /// The URL of `prefix` in `bucket`.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        let scheme = match self.kind {
            Kind::S3 => "s3",
            Kind::Azure => "azure",
            Kind::Gcs => "gs",
        };
        if prefix.is_empty() {
            format!("{scheme}://{bucket}")
        } else {
            format!("{scheme}://{bucket}/{prefix}")
        }
    }

    /// Creates a fresh bucket (container) and returns a repository under `prefix` in it.
    pub fn repository(&self, prefix: &str) -> Repository {
        let bucket = self.unique_bucket();
        let url = self.url(&bucket, prefix);
        let options = self.options();
        pgbak_storage::create_bucket(&url, &options)
            .unwrap_or_else(|e| panic!("cannot create {url}: {e}\n{}", self.log()));
        Repository {
            url,
            bucket,
            options,
            env: self.env(),
        }
    }

    /// Keys of objects in `bucket` under `prefix`, asked without pgbak (S3 and GCS; Azurite
    /// wants signed requests, so its tests use pgbak's own listing).
    pub fn raw_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        match self.kind {
            Kind::S3 => {
                let (status, body) = http(
                    self.addr(),
                    "GET",
                    &format!("/{bucket}?list-type=2&prefix={prefix}"),
                    &[],
                    b"",
                )
                .expect("list");
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                xml_values(&String::from_utf8_lossy(&body), "Key")
            }
            Kind::Gcs => {
                let (status, body) = http(
                    self.addr(),
                    "GET",
                    &format!("/storage/v1/b/{bucket}/o?prefix={prefix}"),
                    &[],
                    b"",
                )
                .expect("list");
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                v["items"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Kind::Azure => panic!("raw listing is for S3 and GCS"),
        }
    }

    /// Keys of the multipart uploads in progress in an S3 bucket, asked without pgbak.
    pub fn raw_s3_uploads(&self, bucket: &str) -> Vec<String> {
        assert_eq!(self.kind, Kind::S3);
        let (status, body) = http(self.addr(), "GET", &format!("/{bucket}?uploads"), &[], b"")
            .expect("list uploads");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        xml_values(&String::from_utf8_lossy(&body), "Key")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bucket or container made for a test, and how to reach it.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The repository URL (`s3://...`, `azure://...`, `gs://...`).
    pub url: String,
    /// The bucket or container.
    pub bucket: String,
    /// Options that reach the emulator without the environment.
    pub options: CloudOptions,
    /// The standard environment that reaches the emulator.
    pub env: Vec<(String, String)>,
}

impl Repository {
    /// Opens it with pgbak's factory.
    pub fn open(&self) -> Arc<dyn pgbak_storage::StorageBackend> {
        pgbak_storage::open(&self.url, &self.options)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.url))
    }
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split(&close).next())
        .map(|s| {
            s.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .collect()
}

/// One HTTP/1.1 request without authentication (moto and fake-gcs-server need none).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..head_end]).to_ascii_lowercase();
    let mut body = resp[head_end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_line = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
}

/// One request seen by a [`FaultProxy`].
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `PUT`, `GET`...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// Body length, when framed by Content-Length.
    pub length: Option<u64>,
    /// Answered by the proxy with an error instead of forwarded.
    pub failed: bool,
    /// Forwarded with one byte of its body changed.
    pub corrupted: bool,
}

impl SeenRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct ProxyState {
    upstream: SocketAddr,
    /// Bytes of upload bodies forwarded so far.
    uploaded: AtomicU64,
    /// Forwarding of upload bodies stops when `uploaded` reaches this, until released.
    hold_at: AtomicU64,
    /// Whether an upload is held now, and the signal of its changes.
    held: Mutex<bool>,
    held_changed: std::sync::Condvar,
    fail_left: AtomicU32,
    fail_status: Mutex<(u16, String, String)>,
    corrupt_left: AtomicU32,
    cut: AtomicBool,
    seen: Mutex<Vec<SeenRequest>>,
    open: Mutex<Vec<TcpStream>>,
}

/// A small HTTP/1.1 proxy on loopback in front of an emulator, for faults the emulators cannot
/// produce: the first N requests answered with a throttling or server error, a request body
/// corrupted in flight, every connection cut. It records each request head.
pub struct FaultProxy {
    port: u16,
    state: Arc<ProxyState>,
}

impl FaultProxy {
    /// A proxy in front of `upstream`.
    pub fn new(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ProxyState {
            upstream,
            uploaded: AtomicU64::new(0),
            hold_at: AtomicU64::new(u64::MAX),
            held: Mutex::new(false),
            held_changed: std::sync::Condvar::new(),
            fail_left: AtomicU32::new(0),
            fail_status: Mutex::new((503, "SlowDown".into(), "Slow Down".into())),
            corrupt_left: AtomicU32::new(0),
            cut: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            open: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    if st.cut.load(Ordering::SeqCst) {
                        drop(conn);
                        continue;
                    }
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let _ = serve(st, conn);
                    });
                }
            })
            .expect("proxy thread");
        FaultProxy { port, state }
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next `n` requests with `status` and the store error `code` (e.g. 503
    /// `SlowDown`, 500 `InternalError`), closing the connection, without forwarding them.
    pub fn fail_next(&self, n: u32, status: u16, code: &str) {
        *self.state.fail_status.lock().unwrap() = (status, code.to_string(), code.to_string());
        self.state.fail_left.store(n, Ordering::SeqCst);
    }

    /// Changes one byte in the body of the next `n` uploads of data (PUT or POST with a body of
    /// at least 64 KiB) on their way to the store.
    pub fn corrupt_next_uploads(&self, n: u32) {
        self.state.corrupt_left.store(n, Ordering::SeqCst);
    }

    /// Cuts every open connection and refuses new ones until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops forwarding upload bodies (PUT or POST) once `bytes` more of them have gone
    /// through, leaving the upload in the middle until [`FaultProxy::release`]: a test can then
    /// stop the store, or kill the uploader, at a point it knows.
    pub fn hold_uploads_after(&self, bytes: u64) {
        let now = self.state.uploaded.load(Ordering::SeqCst);
        self.state.hold_at.store(now + bytes, Ordering::SeqCst);
    }

    /// Waits until an upload is held (see [`FaultProxy::hold_uploads_after`]); false after
    /// `timeout` without one.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let held = self.state.held.lock().unwrap();
        let (held, _) = self
            .state
            .held_changed
            .wait_timeout_while(held, timeout, |h| !*h)
            .unwrap();
        *held
    }

    /// Lets held uploads go on, and holds no more.
    pub fn release(&self) {
        self.state.hold_at.store(u64::MAX, Ordering::SeqCst);
        *self.state.held.lock().unwrap() = false;
        self.state.held_changed.notify_all();
    }

    /// Forwards again after [`FaultProxy::cut`].
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn serve(st: Arc<ProxyState>, client: TcpStream) -> std::io::Result<()> {
    st.open.lock().unwrap().push(client.try_clone()?);
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let mut upstream: Option<TcpStream> = None;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
        }
        if st.cut.load(Ordering::SeqCst) {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.lines();
        let mut first = lines.next().unwrap_or_default().split_whitespace();
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let length: Option<u64> = get("content-length").and_then(|v| v.parse().ok());
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let expect_continue = get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let mut seen = SeenRequest {
            method: method.clone(),
            target,
            headers: headers.clone(),
            length,
            failed: false,
            corrupted: false,
        };
        let fail = st
            .fail_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            if !expect_continue {
                copy_body(&mut reader, &mut std::io::sink(), length, chunked, false)?;
            }
            let (status, code, msg) = st.fail_status.lock().unwrap().clone();
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
            );
            let resp = format!(
                "HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nx-ms-error-code: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            seen.failed = true;
            st.seen.lock().unwrap().push(seen);
            client_w.write_all(resp.as_bytes())?;
            return Ok(());
        }
        let corrupt = (method == "PUT" || method == "POST")
            && length.unwrap_or(0) >= 64 << 10
            && st
                .corrupt_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        seen.corrupted = corrupt;
        st.seen.lock().unwrap().push(seen);
        if upstream.is_none() {
            let up = TcpStream::connect(st.upstream)?;
            st.open.lock().unwrap().push(up.try_clone()?);
            let mut up_r = up.try_clone()?;
            let mut cl = client_w.try_clone()?;
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut up_r, &mut cl);
                let _ = cl.shutdown(std::net::Shutdown::Both);
            });
            upstream = Some(up);
        }
        let up = upstream.as_mut().expect("connected");
        up.write_all(&head)?;
        let upload = method == "PUT" || method == "POST";
        let mut gate = HoldGate {
            to: up,
            st: upload.then_some(&*st),
        };
        copy_body(&mut reader, &mut gate, length, chunked, corrupt)?;
    }
}

/// A writer that counts the upload bytes going through it and holds them at the proxy's
/// `hold_at` mark until released.
struct HoldGate<'a> {
    to: &'a mut TcpStream,
    st: Option<&'a ProxyState>,
}

impl Write for HoldGate<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(st) = self.st else {
            return self.to.write(buf);
        };
        let done = st.uploaded.load(Ordering::SeqCst);
        let hold_at = st.hold_at.load(Ordering::SeqCst);
        if done >= hold_at {
            let mut held = st.held.lock().unwrap();
            *held = true;
            st.held_changed.notify_all();
            while *held && st.hold_at.load(Ordering::SeqCst) != u64::MAX {
                held = st.held_changed.wait(held).unwrap();
            }
            drop(held);
            return self.write(buf);
        }
        let room = (hold_at - done).min(buf.len() as u64) as usize;
        let n = self.to.write(&buf[..room])?;
        st.uploaded.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.to.flush()
    }
}

fn copy_body(
    from: &mut BufReader<TcpStream>,
    to: &mut dyn Write,
    length: Option<u64>,
    chunked: bool,
    corrupt: bool,
) -> std::io::Result<()> {
    if chunked {
        loop {
            let mut line = Vec::new();
            from.read_until(b'\n', &mut line)?;
            to.write_all(&line)?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            if size == 0 {
                // trailers, up to the empty line
                loop {
                    let mut t = Vec::new();
                    from.read_until(b'\n', &mut t)?;
                    to.write_all(&t)?;
                    if t == b"\r\n" || t.is_empty() {
                        return Ok(());
                    }
                }
            }
            let mut chunk = vec![0u8; size + 2];
            from.read_exact(&mut chunk)?;
            to.write_all(&chunk)?;
        }
    }
    let mut left = length.unwrap_or(0);
    let middle = left / 2;
    let mut pos = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if corrupt && pos <= middle && middle < pos + n as u64 {
            buf[(middle - pos) as usize] ^= 0x55;
        }
        to.write_all(&buf[..n])?;
        pos += n as u64;
        left -= n as u64;
    }
    Ok(())
}
