//! The TLS keywords of a connection string and their `PGSSL*` variables, resolved with libpq's
//! defaults and rules: `sslmode=prefer`, the files under `~/.postgresql/`, `sslrootcert=system`
//! strengthening the default mode to `verify-full`, and the refusals libpq makes before connecting.
//! Files are only named here; [`crate::tls`] reads them when a connection attempt needs them.

use crate::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// libpq's `sslmode`: whether TLS is tried, required, and how much of the server certificate is
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Cleartext first; TLS only if the server rejects the cleartext connection.
    Allow,
    /// TLS if the server offers it, else cleartext (libpq's default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate chain is checked only when a root certificate file exists.
    Require,
    /// TLS, and the server certificate must chain to a trusted root.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The keyword value, as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses a keyword value.
    ///
    /// ```
    /// use pgbak_wal::conninfo::SslMode;
    /// assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
    /// assert_eq!(SslMode::parse("maybe"), None);
    /// ```
    pub fn parse(s: &str) -> Option<SslMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether a connection in this mode must be encrypted (`require`, `verify-ca`,
    /// `verify-full`).
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether the certificate chain must be verified whatever files exist.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's `sslnegotiation` (PostgreSQL 17 and later servers understand `direct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslNegotiation {
    /// Ask with an SSLRequest packet and start TLS when the server answers `S`.
    #[default]
    Postgres,
    /// Start the TLS handshake right away, with ALPN `postgresql`.
    Direct,
}

/// libpq's `channel_binding`: whether SCRAM-SHA-256-PLUS binds authentication to the TLS channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBindingMode {
    /// Never bind.
    Disable,
    /// Bind when TLS is in use and the server offers SCRAM-SHA-256-PLUS.
    #[default]
    Prefer,
    /// Refuse any authentication that is not a channel-bound SCRAM exchange.
    Require,
}

/// libpq's `sslcertmode` (libpq 16): whether the client certificate is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslCertMode {
    /// Never send a client certificate.
    Disable,
    /// Send one when the server asks and one is configured.
    #[default]
    Allow,
    /// Fail unless the server asked for a client certificate.
    Require,
}

/// A TLS protocol version as libpq names it (`TLSv1` ... `TLSv1.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLSv1` (1.0).
    Tls1_0,
    /// `TLSv1.1`.
    Tls1_1,
    /// `TLSv1.2`.
    Tls1_2,
    /// `TLSv1.3`.
    Tls1_3,
}

impl TlsVersion {
    /// The keyword value, as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls1_0 => "TLSv1",
            TlsVersion::Tls1_1 => "TLSv1.1",
            TlsVersion::Tls1_2 => "TLSv1.2",
            TlsVersion::Tls1_3 => "TLSv1.3",
        }
    }

    fn parse(s: &str) -> Option<TlsVersion> {
        // libpq compares case-insensitively.
        [
            TlsVersion::Tls1_0,
            TlsVersion::Tls1_1,
            TlsVersion::Tls1_2,
            TlsVersion::Tls1_3,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// A file named by a TLS keyword or by libpq's default under `~/.postgresql/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslFile {
    /// Where it is.
    pub path: PathBuf,
    /// Whether the connection string or the environment named it (else it is a default, which
    /// may be absent).
    pub explicit: bool,
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of certificates (`sslrootcert=FILE` or `~/.postgresql/root.crt`).
    File(SslFile),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

/// The resolved TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslParams {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslnegotiation`.
    pub negotiation: SslNegotiation,
    /// `channel_binding`.
    pub channel_binding: ChannelBindingMode,
    /// `sslcertmode`.
    pub certmode: SslCertMode,
    /// `sslrootcert`, or `~/.postgresql/root.crt`; `None` without a home directory.
    pub rootcert: Option<RootCert>,
    /// `sslcert`, or `~/.postgresql/postgresql.crt`.
    pub cert: Option<SslFile>,
    /// `sslkey`, or `~/.postgresql/postgresql.key`.
    pub key: Option<SslFile>,
    /// `sslcrl`, or `~/.postgresql/root.crl` when neither `sslcrl` nor `sslcrldir` is set.
    pub crl: Option<SslFile>,
    /// `sslcrldir`: a directory of PEM revocation lists.
    pub crldir: Option<PathBuf>,
    /// `sslsni`: send the host name in the TLS handshake (never for IP addresses).
    pub sni: bool,
    /// `ssl_min_protocol_version` (libpq's default `TLSv1.2`); `None` = no lower bound.
    pub min_protocol_version: Option<TlsVersion>,
    /// `ssl_max_protocol_version`; `None` = no upper bound.
    pub max_protocol_version: Option<TlsVersion>,
}

impl Default for SslParams {
    /// libpq's defaults for a user without a home directory.
    fn default() -> Self {
        SslParams {
            mode: SslMode::Prefer,
            negotiation: SslNegotiation::Postgres,
            channel_binding: ChannelBindingMode::Prefer,
            certmode: SslCertMode::Allow,
            rootcert: None,
            cert: None,
            key: None,
            crl: None,
            crldir: None,
            sni: true,
            min_protocol_version: Some(TlsVersion::Tls1_2),
            max_protocol_version: None,
        }
    }
}

/// Looks a keyword up in the connection string, else in its environment variable.
pub(super) type Lookup<'a> = dyn Fn(&str, Option<&str>) -> Option<String> + 'a;

fn invalid(key: &str, value: &str) -> Error {
    Error::conninfo(format!("invalid {key} value: \"{value}\""))
}

impl SslParams {
    /// Resolves the TLS keywords with `get` (conninfo, then environment; empty = unset) and the
    /// user's home directory for libpq's default files.
    pub(super) fn resolve(get: &Lookup<'_>, home: Option<&Path>) -> Result<SslParams> {
        let dot_pg = home.map(|h| h.join(".postgresql"));
        let default_file = |name: &str| {
            dot_pg.as_ref().map(|d| SslFile {
                path: d.join(name),
                explicit: false,
            })
        };
        let explicit = |key: &str, var: &str| {
            get(key, Some(var)).map(|p| SslFile {
                path: PathBuf::from(p),
                explicit: true,
            })
        };

        let rootcert = match get("sslrootcert", Some("PGSSLROOTCERT")) {
            Some(v) if v == "system" => Some(RootCert::System),
            Some(v) => Some(RootCert::File(SslFile {
                path: PathBuf::from(v),
                explicit: true,
            })),
            None => default_file("root.crt").map(RootCert::File),
        };

        let mode = match get("sslmode", Some("PGSSLMODE")) {
            Some(v) => {
                let mode = SslMode::parse(&v).ok_or_else(|| invalid("sslmode", &v))?;
                if rootcert == Some(RootCert::System) && mode != SslMode::VerifyFull {
                    return Err(Error::conninfo(format!(
                        "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
                    )));
                }
                mode
            }
            // libpq 16: the system's roots only make sense with host-name checks.
            None if rootcert == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };

        let negotiation = match get("sslnegotiation", Some("PGSSLNEGOTIATION")).as_deref() {
            None | Some("postgres") => SslNegotiation::Postgres,
            Some("direct") => SslNegotiation::Direct,
            Some(other) => return Err(invalid("sslnegotiation", other)),
        };
        if negotiation == SslNegotiation::Direct && !mode.requires_tls() {
            // A server that does not speak direct TLS would otherwise get the startup packet in
            // cleartext on the fallback path.
            return Err(Error::conninfo(format!(
                "weak sslmode \"{mode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"
            )));
        }

        let channel_binding = match get("channel_binding", Some("PGCHANNELBINDING")).as_deref() {
            None | Some("prefer") => ChannelBindingMode::Prefer,
            Some("disable") => ChannelBindingMode::Disable,
            Some("require") => ChannelBindingMode::Require,
            Some(other) => return Err(invalid("channel_binding", other)),
        };

        let certmode = match get("sslcertmode", Some("PGSSLCERTMODE")).as_deref() {
            None | Some("allow") => SslCertMode::Allow,
            Some("disable") => SslCertMode::Disable,
            Some("require") => SslCertMode::Require,
            Some(other) => return Err(invalid("sslcertmode", other)),
        };

        let sni = match get("sslsni", Some("PGSSLSNI")).as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => return Err(invalid("sslsni", other)),
        };

        let version = |key: &str, var: &str, default: Option<TlsVersion>| match get(key, Some(var))
        {
            None => Ok(default),
            Some(v) => TlsVersion::parse(&v)
                .map(Some)
                .ok_or_else(|| invalid(key, &v)),
        };
        let min_protocol_version = version(
            "ssl_min_protocol_version",
            "PGSSLMINPROTOCOLVERSION",
            Some(TlsVersion::Tls1_2),
        )?;
        let max_protocol_version =
            version("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", None)?;
        if let (Some(min), Some(max)) = (min_protocol_version, max_protocol_version) {
            if min > max {
                return Err(Error::conninfo("invalid SSL protocol version range"));
            }
        }

        let cert = explicit("sslcert", "PGSSLCERT").or_else(|| default_file("postgresql.crt"));
        let key = explicit("sslkey", "PGSSLKEY").or_else(|| default_file("postgresql.key"));
        if let Some(k) = key.as_ref().filter(|k| k.explicit) {
            let text = k.path.to_string_lossy();
            // libpq reads `engine:key` as an OpenSSL engine reference.
            if !text.starts_with('/') && text.contains(':') {
                return Err(Error::conninfo(format!(
                    "sslkey \"{text}\" names an OpenSSL engine key, which pgbak does not support; give a PEM key file"
                )));
            }
        }
        if get("sslpassword", None).is_some() {
            return Err(Error::conninfo(
                "sslpassword is not supported: pgbak reads unencrypted private key files only (mode 0600)",
            ));
        }
        let crldir = get("sslcrldir", Some("PGSSLCRLDIR")).map(PathBuf::from);
        let crl = explicit("sslcrl", "PGSSLCRL").or_else(|| {
            if crldir.is_none() {
                default_file("root.crl")
            } else {
                None
            }
        });

        Ok(SslParams {
            mode,
            negotiation,
            channel_binding,
            certmode,
            rootcert,
            cert,
            key,
            crl,
            crldir,
            sni,
            min_protocol_version,
            max_protocol_version,
        })
    }

    /// The keywords that differ from libpq's defaults, for a connection string that resolves to
    /// the same settings (default files are left out: they are found again the same way).
    pub(super) fn conninfo_parts(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let defaults = SslParams::default();
        let system = self.rootcert == Some(RootCert::System);
        if self.mode != SslMode::Prefer && !(system && self.mode == SslMode::VerifyFull) {
            out.push(("sslmode", self.mode.as_str().to_string()));
        }
        if self.negotiation == SslNegotiation::Direct {
            out.push(("sslnegotiation", "direct".to_string()));
        }
        match self.channel_binding {
            ChannelBindingMode::Prefer => {}
            ChannelBindingMode::Disable => out.push(("channel_binding", "disable".into())),
            ChannelBindingMode::Require => out.push(("channel_binding", "require".into())),
        }
        match self.certmode {
            SslCertMode::Allow => {}
            SslCertMode::Disable => out.push(("sslcertmode", "disable".into())),
            SslCertMode::Require => out.push(("sslcertmode", "require".into())),
        }
        match &self.rootcert {
            Some(RootCert::System) => out.push(("sslrootcert", "system".into())),
            Some(RootCert::File(f)) if f.explicit => {
                out.push(("sslrootcert", f.path.to_string_lossy().into_owned()))
            }
            _ => {}
        }
        for (key, file) in [
            ("sslcert", &self.cert),
            ("sslkey", &self.key),
            ("sslcrl", &self.crl),
        ] {
            if let Some(f) = file.as_ref().filter(|f| f.explicit) {
                out.push((key, f.path.to_string_lossy().into_owned()));
            }
        }
        if let Some(d) = &self.crldir {
            out.push(("sslcrldir", d.to_string_lossy().into_owned()));
        }
        if !self.sni {
            out.push(("sslsni", "0".into()));
        }
        if let Some(v) = self
            .min_protocol_version
            .filter(|v| Some(*v) != defaults.min_protocol_version)
        {
            out.push(("ssl_min_protocol_version", v.as_str().to_string()));
        }
        if let Some(v) = self.max_protocol_version {
            out.push(("ssl_max_protocol_version", v.as_str().to_string()));
        }
        out
    }
}
