//! Connection parameters with libpq's semantics: `key=value` strings and `postgresql://` URIs, the
//! `PG*` environment variables, built-in defaults and the password file. Operators configure pgbak
//! the way they configure psql and pg_basebackup, and tokio-postgres does none of this by itself.
//!
//! The TLS keywords (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `sslcrldir`,
//! `sslnegotiation`, `sslsni`, `sslcertmode`, `ssl_min_protocol_version`,
//! `ssl_max_protocol_version`, `channel_binding`) and their `PGSSL*` variables are resolved in
//! [`SslParams`] and used by [`crate::tls`].
//!
//! Keywords that only matter for features this client does not use are accepted and ignored:
//! `sslcompression` (a no-op in libpq too), TCP tuning (`keepalives`, `keepalives_idle`,
//! `keepalives_interval`, `keepalives_count`, `tcp_user_timeout`), multi-host selection
//! (`target_session_attrs`, `load_balance_hosts`), Kerberos naming (`krbsrvname`, `gsslib`,
//! `gssdelegation`), `client_encoding` (this client always asks for UTF8) and `replication` (set
//! by the client itself). `gssencmode` is accepted unless it demands what this client cannot do
//! (`require`). Anything else, including `service`, `require_auth`, `requirepeer` and
//! `sslpassword` (encrypted keys are not supported), is an error naming the keyword.

mod parse;
pub(crate) mod pgpass;
mod ssl;
#[cfg(test)]
mod ssl_tests;

pub use parse::{parse_conninfo, redacted};
pub use ssl::{
    ChannelBindingMode, RootCert, SslCertMode, SslFile, SslMode, SslNegotiation, SslParams,
    TlsVersion,
};

use crate::{Error, Result};
use parse::quote_value;
use pgpass::password_from_file;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket directory libpq was built with on Debian and derivatives.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// Resolved connection parameters for one server, after conninfo, environment, defaults and the
/// password file were applied.
///
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// Host name or IP address, or a path starting with `/`: the Unix socket directory. When both
    /// `host` and `hostaddr` were given, this is `hostaddr` (the address actually connected to);
    /// the password file was searched with `host`, as libpq does.
    pub host: String,
    /// The name given by `host` (or the default `localhost`) when it is not a socket directory:
    /// what TLS sends as SNI and what `verify-full` checks the certificate against. `None` when
    /// only `hostaddr` named the server.
    pub server_name: Option<String>,
    /// TCP port, also the suffix of the socket file name.
    pub port: u16,
    /// Database user name.
    pub user: String,
    /// Database name (ignored by the server on physical replication connections).
    pub dbname: String,
    /// Password from the conninfo, PGPASSWORD or the password file.
    pub password: Option<String>,
    /// `application_name` reported to the server.
    pub application_name: Option<String>,
    /// Time allowed for connecting and authenticating.
    pub connect_timeout: Option<Duration>,
    /// Server options sent at startup (`-c name=value ...`).
    pub options: Option<String>,
    /// TLS settings (`sslmode` and the other `ssl*` keywords).
    pub ssl: SslParams,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("server_name", &self.server_name)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// What the machine provides when nothing else says: kept apart so that tests control it.
struct SystemDefaults {
    default_socket_dir_exists: bool,
    os_user: Option<String>,
}

/// The effective user's name and home directory from the password database.
fn passwd_entry() -> Option<(String, PathBuf)> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose length it is told) and sets
    // `result` to null or to `&pwd`; the strings it points to live in `buf`, read before it is freed.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let name = CStr::from_ptr(pwd.pw_name).to_str().ok()?.to_string();
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(
            CStr::from_ptr(pwd.pw_dir).to_bytes(),
        ));
        Some((name, dir))
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl ConnParams {
    /// Resolves `conninfo` with the process environment and the user's home directory.
    pub fn resolve(conninfo: &str) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        let home = non_empty(std::env::var("HOME").ok())
            .map(PathBuf::from)
            .or_else(|| passwd_entry().map(|(_, dir)| dir));
        Self::resolve_with(conninfo, &env, home.as_deref())
    }

    /// Resolves `conninfo` with the given environment lookup and home directory (the password file
    /// defaults to `<home>/.pgpass`). The default user is still the process's user.
    ///
    /// ```
    /// use pgbak_wal::ConnParams;
    /// let env = |k: &str| (k == "PGPORT").then(|| "5433".to_string());
    /// let p = ConnParams::resolve_with("host=db1 user=backup password=x", &env, None).unwrap();
    /// assert_eq!((p.host.as_str(), p.port, p.dbname.as_str()), ("db1", 5433, "backup"));
    /// assert_eq!(p.to_conninfo_string(), "host=db1 port=5433 user=backup dbname=backup");
    /// ```
    pub fn resolve_with(
        conninfo: &str,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self> {
        let defaults = SystemDefaults {
            default_socket_dir_exists: Path::new(DEFAULT_SOCKET_DIR).is_dir(),
            os_user: passwd_entry()
                .map(|(name, _)| name)
                .or_else(|| non_empty(env("USER"))),
        };
        Self::resolve_inner(conninfo, env, home, &defaults)
    }

    fn resolve_inner(
        conninfo: &str,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
        defaults: &SystemDefaults,
    ) -> Result<Self> {
        let opts = parse_conninfo(conninfo)?;
        // A keyword present in the conninfo wins even when empty (libpq only consults the
        // environment for options that were not given at all); empty then means "default".
        let get = |key: &str, var: Option<&str>| -> Option<String> {
            match opts.get(key) {
                Some(v) => non_empty(Some(v.clone())),
                None => non_empty(var.and_then(env)),
            }
        };

        let host = get("host", Some("PGHOST"));
        let hostaddr = get("hostaddr", Some("PGHOSTADDR"));
        for (name, v) in [("host", &host), ("hostaddr", &hostaddr)] {
            if v.as_deref().is_some_and(|v| v.contains(',')) {
                return Err(Error::conninfo(format!(
                    "multiple hosts in \"{name}\" are not supported; give one server"
                )));
            }
        }
        let default_host = if defaults.default_socket_dir_exists {
            DEFAULT_SOCKET_DIR
        } else {
            "localhost"
        };
        let connect_host = hostaddr
            .clone()
            .or_else(|| host.clone())
            .unwrap_or_else(|| default_host.to_string());
        let server_name = match (&host, &hostaddr) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(default_host.to_string()),
        }
        .filter(|h| !h.starts_with('/'));
        let pgpass_host = host
            .or(hostaddr)
            .unwrap_or_else(|| default_host.to_string());

        let port = match get("port", Some("PGPORT")) {
            None => DEFAULT_PORT,
            Some(p) => match p.trim().parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(Error::conninfo(format!("invalid port number: \"{p}\""))),
            },
        };

        let user = get("user", Some("PGUSER"))
            .or_else(|| defaults.os_user.clone())
            .ok_or_else(|| {
                Error::conninfo("could not determine the user name: set user in the connection string or PGUSER")
            })?;
        let dbname = get("dbname", Some("PGDATABASE")).unwrap_or_else(|| user.clone());

        let application_name = get("application_name", Some("PGAPPNAME"))
            .or_else(|| get("fallback_application_name", None));

        let connect_timeout = match get("connect_timeout", Some("PGCONNECT_TIMEOUT")) {
            None => None,
            Some(t) => {
                let secs: i64 = t.trim().parse().map_err(|_| {
                    Error::conninfo(format!(
                        "invalid integer value \"{t}\" for connection option \"connect_timeout\""
                    ))
                })?;
                // libpq: zero or negative waits forever, and the minimum is 2 seconds.
                match secs {
                    i64::MIN..=0 => None,
                    1 => Some(Duration::from_secs(2)),
                    n => Some(Duration::from_secs(n.unsigned_abs())),
                }
            }
        };

        let options = get("options", Some("PGOPTIONS"));

        let ssl = SslParams::resolve(&get, home)?;
        match get("gssencmode", Some("PGGSSENCMODE")).as_deref() {
            None | Some("disable") | Some("prefer") => {}
            Some("require") => {
                return Err(Error::conninfo(
                    "gssencmode=require needs GSSAPI encryption, which pgbak's replication client does not support",
                ))
            }
            Some(other) => return Err(Error::conninfo(format!("invalid gssencmode value: \"{other}\""))),
        }

        let password = match get("password", Some("PGPASSWORD")) {
            Some(p) => Some(p),
            None => {
                let passfile = get("passfile", Some("PGPASSFILE"))
                    .map(PathBuf::from)
                    .or_else(|| home.map(|h| h.join(".pgpass")));
                passfile.and_then(|f| password_from_file(&f, &pgpass_host, port, &dbname, &user))
            }
        };

        Ok(ConnParams {
            host: connect_host,
            server_name,
            port,
            user,
            dbname,
            password,
            application_name,
            connect_timeout,
            options,
            ssl,
        })
    }

    /// Whether `host` names a Unix socket directory.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The socket file (`{host}/.s.PGSQL.{port}`) when `host` is a socket directory.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.is_unix_socket()
            .then(|| Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port)))
    }

    /// A short name of the server for messages: `host:port` or the socket path.
    pub fn server_display(&self) -> String {
        match self.socket_path() {
            Some(p) => p.display().to_string(),
            None if self.host.contains(':') => format!("[{}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// A libpq keyword/value string for these parameters, WITHOUT the password (for
    /// `primary_conninfo`, where the password belongs in a password file, and for display).
    /// TLS keywords are written only when they differ from libpq's defaults.
    pub fn to_conninfo_string(&self) -> String {
        let mut parts = Vec::new();
        match &self.server_name {
            Some(name) if *name != self.host && !self.is_unix_socket() => {
                parts.push(format!("host={}", quote_value(name)));
                parts.push(format!("hostaddr={}", quote_value(&self.host)));
            }
            _ => parts.push(format!("host={}", quote_value(&self.host))),
        }
        if self.server_name.is_none() && !self.is_unix_socket() {
            parts[0] = format!("hostaddr={}", quote_value(&self.host));
        }
        parts.extend([
            format!("port={}", self.port),
            format!("user={}", quote_value(&self.user)),
            format!("dbname={}", quote_value(&self.dbname)),
        ]);
        if let Some(a) = &self.application_name {
            parts.push(format!("application_name={}", quote_value(a)));
        }
        if let Some(t) = self.connect_timeout {
            parts.push(format!("connect_timeout={}", t.as_secs()));
        }
        if let Some(o) = &self.options {
            parts.push(format!("options={}", quote_value(o)));
        }
        for (key, value) in self.ssl.conninfo_parts() {
            parts.push(format!("{key}={}", quote_value(&value)));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    fn defaults(socket: bool, user: Option<&str>) -> SystemDefaults {
        SystemDefaults {
            default_socket_dir_exists: socket,
            os_user: user.map(str::to_string),
        }
    }

    fn resolve(conninfo: &str, env: &[(&str, &str)], home: Option<&Path>) -> Result<ConnParams> {
        ConnParams::resolve_inner(
            conninfo,
            &env_of(env),
            home,
            &defaults(true, Some("osuser")),
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let p = resolve("", &[], None).unwrap();
        assert_eq!(
            p,
            ConnParams {
                host: "/var/run/postgresql".into(),
                server_name: None,
                port: 5432,
                user: "osuser".into(),
                dbname: "osuser".into(),
                password: None,
                application_name: None,
                connect_timeout: None,
                options: None,
                ssl: SslParams::default(),
            }
        );
        assert_eq!(
            p.socket_path().unwrap(),
            PathBuf::from("/var/run/postgresql/.s.PGSQL.5432")
        );
        let p =
            ConnParams::resolve_inner("", &env_of(&[]), None, &defaults(false, Some("u"))).unwrap();
        assert_eq!(p.host, "localhost");
        assert_eq!(p.socket_path(), None);
        assert_eq!(p.server_display(), "localhost:5432");
        let err =
            ConnParams::resolve_inner("", &env_of(&[]), None, &defaults(false, None)).unwrap_err();
        assert!(err.to_string().contains("user name"), "{err}");
    }

    #[test]
    fn environment_fills_what_conninfo_leaves_out() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGOPTIONS", "-c x=y"),
            ("PGSSLMODE", "disable"),
        ];
        let p = resolve("", &env, None).unwrap();
        assert_eq!(p.host, "envhost");
        assert_eq!(p.port, 6543);
        assert_eq!(p.user, "envuser");
        assert_eq!(p.dbname, "envdb");
        assert_eq!(p.password.as_deref(), Some("envpw"));
        assert_eq!(p.application_name.as_deref(), Some("envapp"));
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(p.options.as_deref(), Some("-c x=y"));
        assert_eq!(p.ssl.mode, SslMode::Disable);

        let p = resolve(
            "host=h port=1 user=u dbname=d password=p application_name=a connect_timeout=3 options=o sslmode=require",
            &env,
            None,
        )
        .unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.user.as_str(), p.dbname.as_str()),
            ("h", 1, "u", "d")
        );
        assert_eq!(p.password.as_deref(), Some("p"));
        assert_eq!(p.application_name.as_deref(), Some("a"));
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(p.options.as_deref(), Some("o"));
        assert_eq!(p.ssl.mode, SslMode::Require);

        // An explicitly empty keyword hides the environment and means "default".
        let p = resolve("host=''", &env, None).unwrap();
        assert_eq!(p.host, "/var/run/postgresql");
        // dbname defaults to the resolved user.
        let p = resolve("user=alice", &[], None).unwrap();
        assert_eq!(p.dbname, "alice");
    }

    #[test]
    fn hostaddr_and_fallback_application_name() {
        let p = resolve("hostaddr=10.0.0.1", &[], None).unwrap();
        assert_eq!(p.host, "10.0.0.1");
        // No host name: verify-full has nothing to check the certificate against.
        assert_eq!(p.server_name, None);
        assert_eq!(
            p.to_conninfo_string(),
            "hostaddr=10.0.0.1 port=5432 user=osuser dbname=osuser"
        );
        let p = resolve("host=db hostaddr=10.0.0.1", &[], None).unwrap();
        assert_eq!(p.host, "10.0.0.1");
        assert_eq!(p.server_name.as_deref(), Some("db"));
        assert_eq!(
            p.to_conninfo_string(),
            "host=db hostaddr=10.0.0.1 port=5432 user=osuser dbname=osuser"
        );
        let p = resolve("host=db", &[], None).unwrap();
        assert_eq!(p.server_name.as_deref(), Some("db"));
        let p =
            ConnParams::resolve_inner("", &env_of(&[]), None, &defaults(false, Some("u"))).unwrap();
        assert_eq!(p.server_name.as_deref(), Some("localhost"));
        let p = resolve("", &[("PGHOSTADDR", "127.0.0.2")], None).unwrap();
        assert_eq!(p.host, "127.0.0.2");
        let p = resolve("fallback_application_name=fb", &[], None).unwrap();
        assert_eq!(p.application_name.as_deref(), Some("fb"));
        let p = resolve(
            "fallback_application_name=fb application_name=an",
            &[],
            None,
        )
        .unwrap();
        assert_eq!(p.application_name.as_deref(), Some("an"));
        let p = resolve(
            "fallback_application_name=fb",
            &[("PGAPPNAME", "env")],
            None,
        )
        .unwrap();
        assert_eq!(p.application_name.as_deref(), Some("env"));
    }

    #[test]
    fn value_checks() {
        assert_eq!(
            resolve("connect_timeout=0", &[], None)
                .unwrap()
                .connect_timeout,
            None
        );
        assert_eq!(
            resolve("connect_timeout=-5", &[], None)
                .unwrap()
                .connect_timeout,
            None
        );
        assert_eq!(
            resolve("connect_timeout=1", &[], None)
                .unwrap()
                .connect_timeout,
            Some(Duration::from_secs(2))
        );
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 9] = [
            ("port=0", &[], "invalid port number"),
            ("port=70000", &[], "invalid port number"),
            ("port=abc", &[], "invalid port number"),
            ("", &[("PGPORT", "x")], "invalid port number"),
            ("connect_timeout=soon", &[], "connect_timeout"),
            ("sslmode=maybe", &[], "invalid sslmode value"),
            (
                "channel_binding=maybe",
                &[],
                "invalid channel_binding value",
            ),
            ("gssencmode=require", &[], "gssencmode=require"),
            ("host=a,b", &[], "multiple hosts"),
        ];
        for (ci, env, want) in cases {
            let err = resolve(ci, env, None).unwrap_err().to_string();
            assert!(err.contains(want), "{ci}: {err}");
        }
        // The password never appears in errors.
        let err = resolve("password=hunter2 port=x", &[], None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    fn write_pgpass(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn password_file_lookup_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        write_pgpass(dir.path(), ".pgpass", "db:5432:*:bob:fromhome\n", 0o600);
        let other = write_pgpass(dir.path(), "other", "db:5432:*:bob:fromenv\n", 0o600);
        let open = write_pgpass(dir.path(), "open", "db:5432:*:bob:open\n", 0o640);

        let p = resolve("host=db user=bob", &[], Some(dir.path())).unwrap();
        assert_eq!(p.password.as_deref(), Some("fromhome"));
        let other_s = other.to_str().unwrap();
        let p = resolve(
            "host=db user=bob",
            &[("PGPASSFILE", other_s)],
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(p.password.as_deref(), Some("fromenv"));
        let ci = format!("host=db user=bob passfile='{other_s}'");
        assert_eq!(
            resolve(&ci, &[], None).unwrap().password.as_deref(),
            Some("fromenv")
        );
        // Explicit passwords win over the file.
        let p = resolve("host=db user=bob password=given", &[], Some(dir.path())).unwrap();
        assert_eq!(p.password.as_deref(), Some("given"));
        let p = resolve(
            "host=db user=bob",
            &[("PGPASSWORD", "envpw")],
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(p.password.as_deref(), Some("envpw"));
        // Group-readable file: ignored.
        let p = resolve(
            "host=db user=bob",
            &[("PGPASSFILE", open.to_str().unwrap())],
            None,
        )
        .unwrap();
        assert_eq!(p.password, None);
        // Not a plain file, missing file: ignored.
        let p = resolve(
            "host=db user=bob",
            &[("PGPASSFILE", dir.path().to_str().unwrap())],
            None,
        )
        .unwrap();
        assert_eq!(p.password, None);
        let p = resolve(
            "host=db user=bob passfile=/nonexistent/x",
            &[],
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(p.password, None);
        // hostaddr alone is matched when host is absent; host wins when both are given.
        write_pgpass(
            dir.path(),
            "addr",
            "10.1.1.1:5432:*:bob:byaddr\ndb:5432:*:bob:byhost\n",
            0o600,
        );
        let addr = dir.path().join("addr");
        let ci = format!("hostaddr=10.1.1.1 user=bob passfile='{}'", addr.display());
        assert_eq!(
            resolve(&ci, &[], None).unwrap().password.as_deref(),
            Some("byaddr")
        );
        let ci = format!(
            "host=db hostaddr=10.1.1.1 user=bob passfile='{}'",
            addr.display()
        );
        let p = resolve(&ci, &[], None).unwrap();
        assert_eq!(p.password.as_deref(), Some("byhost"));
        assert_eq!(p.host, "10.1.1.1");
    }

    #[test]
    fn conninfo_rendering_has_no_password_and_round_trips() {
        let p = ConnParams {
            host: "/tmp/my sock".into(),
            server_name: None,
            port: 5433,
            user: "o'brien".into(),
            dbname: "db\\x".into(),
            password: Some("secret".into()),
            application_name: Some("pgbak".into()),
            connect_timeout: Some(Duration::from_secs(10)),
            options: Some("-c search_path=".into()),
            ssl: SslParams {
                mode: SslMode::Disable,
                ..SslParams::default()
            },
        };
        let s = p.to_conninfo_string();
        assert_eq!(
            s,
            r"host='/tmp/my sock' port=5433 user='o\'brien' dbname='db\\x' application_name=pgbak connect_timeout=10 options='-c search_path=' sslmode=disable"
        );
        assert!(!s.contains("secret"));
        let back = resolve(&s, &[], None).unwrap();
        assert_eq!(
            back,
            ConnParams {
                password: None,
                ..p.clone()
            }
        );
        assert!(!format!("{p:?}").contains("secret"));
        let plain = ConnParams {
            host: "db.example".into(),
            server_name: Some("db.example".into()),
            ssl: SslParams::default(),
            application_name: None,
            connect_timeout: None,
            options: None,
            ..p
        };
        assert_eq!(
            plain.to_conninfo_string(),
            r"host=db.example port=5433 user='o\'brien' dbname='db\\x'"
        );
    }

    #[test]
    fn unix_socket_and_display() {
        let p = resolve("host=/tmp/s port=7777", &[], None).unwrap();
        assert!(p.is_unix_socket());
        assert_eq!(
            p.socket_path().unwrap(),
            PathBuf::from("/tmp/s/.s.PGSQL.7777")
        );
        assert_eq!(p.server_display(), "/tmp/s/.s.PGSQL.7777");
        let p = resolve("host=::1", &[], None).unwrap();
        assert_eq!(p.server_display(), "[::1]:5432");
    }
}
