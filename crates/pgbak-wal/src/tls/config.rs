//! The rustls client configuration for one connection attempt, built from [`SslParams`] the way
//! libpq's `initialize_SSL` reads its files: the root certificates (a file, `~/.postgresql/root.crt`
//! or the system's store), revocation lists, and the client certificate with its private key,
//! whose permissions are checked as libpq checks them.

use super::verify::{Failure, LibpqVerifier};
use crate::conninfo::{RootCert, SslCertMode, SslFile, SslMode, SslParams, TlsVersion};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The ALPN protocol name PostgreSQL 17 defined; required for direct TLS, harmless otherwise.
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// A configuration plus what the handshake reports back through it.
pub(crate) struct Built {
    pub config: Arc<ClientConfig>,
    /// Set when the server asked for a client certificate (for `sslcertmode=require`).
    pub cert_requested: Arc<AtomicBool>,
    /// Why the verifier refused the server's certificate, in libpq's words.
    pub failure: Failure,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("could not read {what} \"{}\": {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("could not read {what} \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "could not read {what} \"{}\": no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "could not read certificate revocation list \"{}\": {e}",
            path.display()
        )
    })?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "could not read certificate revocation list \"{}\": {e}",
                path.display()
            )
        })
}

/// The trusted roots, or `None` when there are none to check against (then only `require`,
/// `prefer` and `allow` may go on, without verifying the server).
fn roots(ssl: &SslParams) -> Result<Option<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    match &ssl.rootcert {
        Some(RootCert::System) => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "sslrootcert=system: no usable certificate in the system's trust store{why}"
                ));
            }
            Ok(Some(store))
        }
        Some(RootCert::File(f)) if std::fs::metadata(&f.path).is_ok() => {
            for cert in read_certs(&f.path, "root certificate file")? {
                store.add(cert).map_err(|e| {
                    format!(
                        "could not read root certificate file \"{}\": {e}",
                        f.path.display()
                    )
                })?;
            }
            Ok(Some(store))
        }
        Some(RootCert::File(f)) if ssl.mode.verifies_chain() => Err(format!(
            "root certificate file \"{}\" does not exist; either provide the file, use the \
             system's trusted roots with sslrootcert=system, or change sslmode to disable server \
             certificate verification",
            f.path.display()
        )),
        None if ssl.mode.verifies_chain() => Err(
            "could not get home directory to locate root certificate file; either provide the \
             file, use the system's trusted roots with sslrootcert=system, or change sslmode to \
             disable server certificate verification"
                .to_string(),
        ),
        _ => Ok(None),
    }
}

/// Revocation lists: `sslcrl`, the PEM files of `sslcrldir`, or `~/.postgresql/root.crl` when it
/// exists. A list the settings name explicitly must be readable (libpq skips it silently; a
/// revocation check that cannot be made is not made quietly here).
fn crls(ssl: &SslParams) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let mut out = Vec::new();
    if let Some(SslFile { path, explicit }) = &ssl.crl {
        match std::fs::metadata(path) {
            Ok(_) => out.extend(read_crls(path)?),
            Err(e) if *explicit || !absent(&e) => {
                return Err(format!(
                    "could not read certificate revocation list \"{}\": {e}",
                    path.display()
                ))
            }
            Err(_) => {}
        }
    }
    if let Some(dir) = &ssl.crldir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "could not read certificate revocation list directory \"{}\": {e}",
                dir.display()
            )
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                format!(
                    "could not read certificate revocation list directory \"{}\": {e}",
                    dir.display()
                )
            })?;
            let path = entry.path();
            if path.is_file() {
                out.extend(read_crls(&path)?);
            }
        }
    }
    Ok(out)
}

/// libpq refuses a key others may read: mode 0600 or less when the current user owns it, 0640 or
/// less when root owns it (system-wide keys). Files of other owners are not checked.
pub(crate) fn key_permissions_ok(owner: u32, euid: u32, mode: u32) -> bool {
    let group_or_other = 0o077;
    let root_forbidden = 0o037; // group write/execute, any other bit
    !((owner == euid && mode & group_or_other != 0) || (owner == 0 && mode & root_forbidden != 0))
}

/// The client certificate and key, when one is configured and present.
fn client_key(ssl: &SslParams, provider: &CryptoProvider) -> Result<Option<CertifiedKey>, String> {
    if ssl.certmode == SslCertMode::Disable {
        return Ok(None);
    }
    let Some(cert) = &ssl.cert else {
        return Ok(None);
    };
    match std::fs::metadata(&cert.path) {
        Ok(_) => {}
        // libpq goes on without a client certificate; the server decides.
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "could not open certificate file \"{}\": {e}",
                cert.path.display()
            ))
        }
    }
    let chain = read_certs(&cert.path, "certificate file")?;
    let Some(key) = &ssl.key else {
        return Err(format!(
            "certificate present (\"{}\"), but no private key file: set sslkey",
            cert.path.display()
        ));
    };
    let key_path = &key.path;
    let meta = match std::fs::metadata(key_path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "certificate present, but not private key file \"{}\"",
                key_path.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "could not stat private key file \"{}\": {e}",
                key_path.display()
            ))
        }
    };
    if !meta.is_file() {
        return Err(format!(
            "private key file \"{}\" is not a regular file",
            key_path.display()
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !key_permissions_ok(meta.uid(), euid, meta.mode()) {
        return Err(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            key_path.display()
        ));
    }
    let bytes = std::fs::read(key_path).map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            key_path.display()
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED") {
        return Err(format!(
            "private key file \"{}\" is encrypted; pgbak reads unencrypted keys only (decrypt it \
             with `openssl pkey` and keep it at mode 0600)",
            key_path.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            key_path.display()
        )
    })?;
    CertifiedKey::from_der(chain, der, provider)
        .map(Some)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "certificate does not match private key file \"{}\"",
                key_path.display()
            ),
            other => format!(
                "could not load private key file \"{}\": {other}",
                key_path.display()
            ),
        })
}

/// Offers the client certificate when the server asks, and remembers that it asked.
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The protocol versions rustls may use within `ssl_min_protocol_version` and
/// `ssl_max_protocol_version` (rustls has TLS 1.2 and 1.3 only).
fn versions(ssl: &SslParams) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let within = |v: TlsVersion| {
        ssl.min_protocol_version.is_none_or(|min| v >= min)
            && ssl.max_protocol_version.is_none_or(|max| v <= max)
    };
    let mut out = Vec::new();
    if within(TlsVersion::Tls1_3) {
        out.push(&rustls::version::TLS13);
    }
    if within(TlsVersion::Tls1_2) {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err(format!(
            "ssl_max_protocol_version={} is older than TLS 1.2, the oldest version pgbak speaks",
            ssl.max_protocol_version
                .map(TlsVersion::as_str)
                .unwrap_or_default()
        ));
    }
    Ok(out)
}

/// Builds the configuration for a connection to `host_name` (the name `verify-full` checks).
pub(crate) fn build(ssl: &SslParams, host_name: Option<&str>) -> Result<Built, String> {
    let provider = provider();
    let versions = versions(ssl)?;
    let roots = roots(ssl)?;
    let check_name = match (ssl.mode, host_name) {
        (SslMode::VerifyFull, Some(h)) if !h.is_empty() => Some(h.to_string()),
        (SslMode::VerifyFull, _) => {
            return Err("host name must be specified for a verified SSL connection".to_string())
        }
        _ => None,
    };
    let chain = match roots {
        Some(roots) => {
            let crls = crls(ssl)?;
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .with_crls(crls)
            .build()
            .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
            Some(verifier)
        }
        None => None,
    };
    let failure = Failure::default();
    let verifier = LibpqVerifier::new(
        chain,
        check_name,
        provider.signature_verification_algorithms,
        failure.clone(),
    );
    let key = client_key(ssl, &provider)?;
    let cert_requested = Arc::new(AtomicBool::new(false));
    let resolver = ClientCert {
        key: key.map(Arc::new),
        requested: cert_requested.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    config.enable_sni = ssl.sni;
    Ok(Built {
        config: Arc::new(config),
        cert_requested,
        failure,
    })
}
