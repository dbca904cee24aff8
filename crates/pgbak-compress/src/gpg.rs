//! GPG encryption as a pipeline stage ([`Encryptor`]), through gpgme: OpenPGP messages (binary,
//! encrypted to one recipient key) that `gpg --decrypt` reads with the private key alone, as
//! Barman writes them; and the decryption of any OpenPGP message for which a secret key is here.
//!
//! gpgme runs an operation to its end in one call, pulling its input from a reader and pushing
//! its output to a writer. The stage runs that call on a thread of its own that owns nothing but
//! two bounded channels; the caller's thread moves bytes between those channels and its own
//! writer or reader. So the stage works on borrowed writers and readers, holds at most a few
//! chunks, and the passphrase stays inside this process (gpgme hands it to gpg on a pipe with
//! loopback pinentry, never on a command line).

use crate::{Encryptor, FinishWrite};
use gpgme::{Context, Data, EncryptFlags, PassphraseRequest, PinentryMode, Protocol};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes per message between the caller and the gpgme thread.
const CHUNK: usize = 256 << 10;
/// Messages in flight each way.
const DEPTH: usize = 4;
/// How long the caller waits for the other direction before trying its own again.
const POLL: Duration = Duration::from_millis(5);

/// Where the passphrase of the secret key comes from when decrypting (in pgbak, the output of
/// `encryption_passphrase_command`). Called once per decryption; what it returns is held only
/// for that decryption.
pub type PassphraseSource = Arc<dyn Fn() -> io::Result<Vec<u8>> + Send + Sync>;

/// Encrypts to one recipient key and decrypts with the keys of a GnuPG home.
#[derive(Clone)]
pub struct GpgEncryptor {
    recipient: String,
    home: Option<PathBuf>,
    passphrase: Option<PassphraseSource>,
}

impl std::fmt::Debug for GpgEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpgEncryptor")
            .field("recipient", &self.recipient)
            .field("home", &self.home)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<command>"))
            .finish()
    }
}

impl GpgEncryptor {
    /// Encrypts to `recipient` (a key id, fingerprint or user id of a public key in the GnuPG
    /// home).
    pub fn new(recipient: impl Into<String>) -> Self {
        GpgEncryptor {
            recipient: recipient.into(),
            home: None,
            passphrase: None,
        }
    }

    /// The GnuPG home to use instead of gpgme's default (`$GNUPGHOME`, else `~/.gnupg`).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// Where the secret key's passphrase comes from; without one, gpg asks its agent (a key
    /// without passphrase, or one the agent has cached).
    pub fn passphrase(mut self, source: PassphraseSource) -> Self {
        self.passphrase = Some(source);
        self
    }
}

fn context(home: &Option<PathBuf>) -> io::Result<Context> {
    let mut ctx =
        Context::from_protocol(Protocol::OpenPgp).map_err(|e| gpg_error("start gpg", e))?;
    if let Some(home) = home {
        let dir = home.to_str().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the GnuPG home is not UTF-8")
        })?;
        ctx.set_engine_home_dir(dir)
            .map_err(|e| gpg_error("set the GnuPG home", e))?;
    }
    ctx.set_armor(false);
    Ok(ctx)
}

fn recipient_key(ctx: &mut Context, recipient: &str) -> io::Result<gpgme::Key> {
    let keys: Vec<gpgme::Key> = ctx
        .find_keys([recipient])
        .map_err(|e| gpg_error("look up the encryption key", e))?
        .filter_map(Result::ok)
        .filter(|k| k.can_encrypt() && !k.is_revoked() && !k.is_expired() && !k.is_disabled())
        .collect();
    match keys.len() {
        1 => Ok(keys.into_iter().next().expect("one key")),
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no usable GPG public key for encryption_key_id {recipient:?}"),
        )),
        n => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("encryption_key_id {recipient:?} names {n} GPG keys; give its fingerprint"),
        )),
    }
}

/// An io::Error from a gpgme error, with what was being done; a missing secret key is
/// `PermissionDenied`, anything else about the data `InvalidData`.
fn gpg_error(what: &str, e: gpgme::Error) -> io::Error {
    let denied = [gpgme::Error::NO_SECKEY, gpgme::Error::BAD_PASSPHRASE];
    let kind = if denied.iter().any(|d| d.code() == e.code()) {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::InvalidData
    };
    io::Error::new(kind, format!("gpg: cannot {what}: {e}"))
}

/// The gpgme side of a channel pair: reads the caller's messages until the caller hangs up.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The gpgme side of a channel pair: sends what gpgme writes, in chunks; fails once the caller
/// has gone.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The caller's ends of a gpgme thread: its input, its output, and the thread.
type Worker = (
    SyncSender<Vec<u8>>,
    Receiver<Vec<u8>>,
    JoinHandle<io::Result<()>>,
);

/// Runs `op` on a gpgme thread between a reader of the caller's messages and a writer of
/// messages back.
fn spawn(
    name: &str,
    op: impl FnOnce(ChannelReader, &mut ChannelWriter) -> io::Result<()> + Send + 'static,
) -> io::Result<Worker> {
    let (in_tx, in_rx) = sync_channel(DEPTH);
    let (out_tx, out_rx) = sync_channel(DEPTH);
    let thread = std::thread::Builder::new()
        .name(format!("pgbak-gpg-{name}"))
        .spawn(move || {
            let input = ChannelReader {
                rx: in_rx,
                current: Vec::new(),
                pos: 0,
            };
            let mut output = ChannelWriter {
                tx: out_tx,
                buf: Vec::with_capacity(CHUNK),
            };
            op(input, &mut output)?;
            output.send()
        })?;
    Ok((in_tx, out_rx, thread))
}

/// The result of a gpgme thread that has ended (or must have: its channels are closed).
fn joined(thread: &mut Option<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    match thread.take() {
        None => Ok(()),
        Some(t) => t
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the gpg thread panicked"))),
    }
}

impl Encryptor for GpgEncryptor {
    fn name(&self) -> &'static str {
        "gpg"
    }

    fn key_id(&self) -> Option<String> {
        Some(self.recipient.clone())
    }

    /// The recipient key, checked usable for encryption (there, not expired, revoked or
    /// disabled, able to encrypt).
    fn check(&self) -> io::Result<()> {
        let mut ctx = context(&self.home)?;
        recipient_key(&mut ctx, &self.recipient).map(|_| ())
    }

    fn encrypt<'a>(
        &self,
        inner: Box<dyn Write + Send + 'a>,
    ) -> io::Result<Box<dyn FinishWrite + 'a>> {
        let key = recipient_key(&mut context(&self.home)?, &self.recipient)?;
        let home = self.home.clone();
        let (plain, cipher, thread) = spawn("encrypt", move |input, output| {
            let mut ctx = context(&home)?;
            let input = Data::from_reader(input).map_err(|e| gpg_error("read", e.error()))?;
            let output = Data::from_writer(output).map_err(|e| gpg_error("write", e.error()))?;
            // The operator named this key: it need not be certified in the keyring's web of
            // trust (Barman's `gpg --encrypt` runs with the same trust). The data is compressed
            // already, or incompressible: gpg does not compress again (`--compress-level 0`).
            ctx.encrypt_with_flags(
                Some(&key),
                input,
                output,
                EncryptFlags::ALWAYS_TRUST | EncryptFlags::NO_COMPRESS,
            )
            .map_err(|e| gpg_error("encrypt", e))?;
            Ok(())
        })?;
        Ok(Box::new(EncryptWriter {
            below: inner,
            plain: Some(plain),
            cipher,
            thread: Some(thread),
            buf: Vec::with_capacity(CHUNK),
        }))
    }

    fn decrypt<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        let home = self.home.clone();
        let passphrase = self.passphrase.clone();
        let (cipher, plain, thread) = spawn("decrypt", move |input, output| {
            let mut ctx = context(&home)?;
            let input = Data::from_reader(input).map_err(|e| gpg_error("read", e.error()))?;
            let output = Data::from_writer(output).map_err(|e| gpg_error("write", e.error()))?;
            match passphrase {
                None => ctx
                    .decrypt(input, output)
                    .map(|_| ())
                    .map_err(|e| gpg_error("decrypt", e)),
                Some(source) => {
                    ctx.set_pinentry_mode(PinentryMode::Loopback)
                        .map_err(|e| gpg_error("ask for the passphrase", e))?;
                    let secret = source()?;
                    let provider = move |_: PassphraseRequest<'_>, out: &mut dyn Write| {
                        out.write_all(&secret)?;
                        out.write_all(b"\n")?;
                        Ok(())
                    };
                    ctx.with_passphrase_provider(provider, |ctx| {
                        ctx.decrypt(input, output)
                            .map(|_| ())
                            .map_err(|e| gpg_error("decrypt", e))
                    })
                }
            }
        })?;
        Ok(Box::new(DecryptReader {
            inner,
            cipher: Some(cipher),
            pending: None,
            plain,
            current: Vec::new(),
            pos: 0,
            thread: Some(thread),
            done: false,
        }))
    }
}

/// Plaintext in, ciphertext out to `below`, through the gpgme thread.
struct EncryptWriter<'a> {
    below: Box<dyn Write + Send + 'a>,
    plain: Option<SyncSender<Vec<u8>>>,
    cipher: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    buf: Vec<u8>,
}

impl EncryptWriter<'_> {
    /// Why the gpgme thread stopped before the end.
    fn failure(&mut self) -> io::Error {
        self.plain = None;
        match joined(&mut self.thread) {
            Err(e) => e,
            Ok(()) => io::Error::other("gpg stopped before the end of the data"),
        }
    }

    /// Writes the ciphertext that is ready, without waiting.
    fn drain_ready(&mut self) -> io::Result<()> {
        loop {
            match self.cipher.try_recv() {
                Ok(c) => self.below.write_all(&c)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(self.failure()),
            }
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let mut chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        loop {
            let Some(tx) = &self.plain else {
                return Err(self.failure());
            };
            match tx.try_send(chunk) {
                Ok(()) => return self.drain_ready(),
                Err(std::sync::mpsc::TrySendError::Full(c)) => {
                    chunk = c;
                    // gpg is busy or waits for its output to be taken.
                    match self.cipher.recv_timeout(POLL) {
                        Ok(c) => self.below.write_all(&c)?,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Err(self.failure()),
                    }
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(self.failure()),
            }
        }
    }
}

impl Write for EncryptWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // An OpenPGP stream has no flush point: bytes go on at the next chunk or at finish.
        Ok(())
    }
}

impl FinishWrite for EncryptWriter<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        // The end of the plaintext: gpg writes the rest of the message and stops.
        self.plain = None;
        while let Ok(c) = self.cipher.recv() {
            self.below.write_all(&c)?;
        }
        joined(&mut self.thread)?;
        self.below.flush()
    }
}

/// Ciphertext from `inner` in, plaintext out, through the gpgme thread.
struct DecryptReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    /// `None` once `inner` is exhausted.
    cipher: Option<SyncSender<Vec<u8>>>,
    /// Ciphertext read from `inner` that the thread has not taken yet.
    pending: Option<Vec<u8>>,
    plain: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    thread: Option<JoinHandle<io::Result<()>>>,
    done: bool,
}

impl DecryptReader<'_> {
    /// The thread has closed its side: its result decides between the end and an error.
    fn ended(&mut self) -> io::Result<usize> {
        self.cipher = None;
        self.done = true;
        joined(&mut self.thread)?;
        if self.pending.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "gpg: data after the end of the encrypted message",
            ));
        }
        Ok(0)
    }

    /// Takes plaintext if some is ready within `wait`; `Some(result)` when the read is over.
    fn take_plain(&mut self, wait: Option<Duration>) -> Option<io::Result<usize>> {
        let got = match wait {
            None => self.plain.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }),
            Some(w) => self.plain.recv_timeout(w),
        };
        match got {
            Ok(c) => {
                self.current = c;
                self.pos = 0;
                None
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(self.ended()),
        }
    }
}

impl Read for DecryptReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = out.len().min(self.current.len() - self.pos);
                out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if let Some(r) = self.take_plain(None) {
                return r;
            }
            if self.pos < self.current.len() {
                continue;
            }
            let Some(tx) = &self.cipher else {
                // Everything was handed over: wait for gpg's output or its end.
                if let Some(r) = self.take_plain(Some(POLL)) {
                    return r;
                }
                continue;
            };
            let chunk = match self.pending.take() {
                Some(c) => c,
                None => {
                    let mut c = vec![0; CHUNK];
                    let n = self.inner.read(&mut c)?;
                    if n == 0 {
                        // The end of the ciphertext.
                        self.cipher = None;
                        continue;
                    }
                    c.truncate(n);
                    c
                }
            };
            match tx.try_send(chunk) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(c)) => {
                    self.pending = Some(c);
                    if let Some(r) = self.take_plain(Some(POLL)) {
                        return r;
                    }
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(c)) => {
                    // gpg stopped reading: the message ended (or failed) before the input did.
                    self.pending = Some(c);
                    if let Some(r) = self.take_plain(Some(Duration::from_secs(60))) {
                        return r;
                    }
                }
            }
        }
    }
}
