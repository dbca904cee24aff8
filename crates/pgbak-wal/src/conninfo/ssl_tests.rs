//! The TLS keywords: every keyword and variable, libpq's defaults under `~/.postgresql/`, and the
//! combinations libpq refuses before connecting.

use super::*;
use std::collections::HashMap;

fn resolve(conninfo: &str, env: &[(&str, &str)], home: Option<&Path>) -> Result<ConnParams> {
    let m: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |k: &str| m.get(k).cloned();
    let defaults = SystemDefaults {
        default_socket_dir_exists: false,
        os_user: Some("osuser".into()),
    };
    ConnParams::resolve_inner(conninfo, &env, home, &defaults)
}

fn ssl(conninfo: &str) -> SslParams {
    resolve(conninfo, &[], None).unwrap().ssl
}

fn err(conninfo: &str, env: &[(&str, &str)]) -> String {
    resolve(conninfo, env, None).unwrap_err().to_string()
}

fn explicit(p: &str) -> Option<SslFile> {
    Some(SslFile {
        path: PathBuf::from(p),
        explicit: true,
    })
}

fn default_in(home: &Path, name: &str) -> Option<SslFile> {
    Some(SslFile {
        path: home.join(".postgresql").join(name),
        explicit: false,
    })
}

#[test]
fn defaults_follow_libpq() {
    let home = Path::new("/home/alice");
    let p = resolve("host=db", &[], Some(home)).unwrap().ssl;
    assert_eq!(p.mode, SslMode::Prefer);
    assert_eq!(p.negotiation, SslNegotiation::Postgres);
    assert_eq!(p.channel_binding, ChannelBindingMode::Prefer);
    assert_eq!(p.certmode, SslCertMode::Allow);
    assert_eq!(p.rootcert, default_in(home, "root.crt").map(RootCert::File));
    assert_eq!(p.cert, default_in(home, "postgresql.crt"));
    assert_eq!(p.key, default_in(home, "postgresql.key"));
    assert_eq!(p.crl, default_in(home, "root.crl"));
    assert_eq!(p.crldir, None);
    assert!(p.sni);
    assert_eq!(p.min_protocol_version, Some(TlsVersion::Tls1_2));
    assert_eq!(p.max_protocol_version, None);

    // No home directory: no default files at all.
    assert_eq!(ssl("host=db"), SslParams::default());
    // sslcrldir replaces the default CRL file.
    let p = resolve("sslcrldir=/etc/crls", &[], Some(home)).unwrap().ssl;
    assert_eq!(p.crl, None);
    assert_eq!(p.crldir, Some(PathBuf::from("/etc/crls")));
}

#[test]
fn every_keyword_is_read() {
    let p = ssl(
        "sslmode=verify-ca sslrootcert=/r.crt sslcert=/c.crt sslkey=/c.key sslcrl=/x.crl \
                 sslcrldir=/crls sslnegotiation=direct channel_binding=require sslcertmode=require \
                 sslsni=0 ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=tlsv1.3 \
                 sslcompression=0",
    );
    assert_eq!(
        p,
        SslParams {
            mode: SslMode::VerifyCa,
            negotiation: SslNegotiation::Direct,
            channel_binding: ChannelBindingMode::Require,
            certmode: SslCertMode::Require,
            rootcert: explicit("/r.crt").map(RootCert::File),
            cert: explicit("/c.crt"),
            key: explicit("/c.key"),
            crl: explicit("/x.crl"),
            crldir: Some(PathBuf::from("/crls")),
            sni: false,
            min_protocol_version: Some(TlsVersion::Tls1_3),
            max_protocol_version: Some(TlsVersion::Tls1_3),
        }
    );
    for (mode, want) in [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        assert_eq!(ssl(&format!("sslmode={mode}")).mode, want);
        assert_eq!(want.as_str(), mode);
    }
    assert_eq!(
        ssl("channel_binding=disable").channel_binding,
        ChannelBindingMode::Disable
    );
    assert_eq!(ssl("sslcertmode=disable").certmode, SslCertMode::Disable);
    assert_eq!(
        ssl("sslnegotiation=postgres").negotiation,
        SslNegotiation::Postgres
    );
    assert_eq!(
        ssl("ssl_min_protocol_version=TLSv1").min_protocol_version,
        Some(TlsVersion::Tls1_0)
    );
    assert_eq!(
        ssl("ssl_max_protocol_version=TLSv1.2").max_protocol_version,
        Some(TlsVersion::Tls1_2)
    );
    // URIs carry the same keywords.
    let p = resolve(
        "postgresql://db/app?sslmode=verify-full&sslrootcert=%2Fca.pem&channel_binding=require",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(p.ssl.mode, SslMode::VerifyFull);
    assert_eq!(p.ssl.rootcert, explicit("/ca.pem").map(RootCert::File));
    assert_eq!(p.ssl.channel_binding, ChannelBindingMode::Require);
}

#[test]
fn environment_variables_are_honoured() {
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "/env/root.crt"),
        ("PGSSLCERT", "/env/c.crt"),
        ("PGSSLKEY", "/env/c.key"),
        ("PGSSLCRL", "/env/x.crl"),
        ("PGSSLCRLDIR", "/env/crls"),
        ("PGSSLNEGOTIATION", "direct"),
        ("PGCHANNELBINDING", "require"),
        ("PGSSLCERTMODE", "disable"),
        ("PGSSLSNI", "0"),
        ("PGSSLMINPROTOCOLVERSION", "TLSv1.3"),
        ("PGSSLMAXPROTOCOLVERSION", "TLSv1.3"),
    ];
    let p = resolve("host=db", &env, Some(Path::new("/home/a")))
        .unwrap()
        .ssl;
    assert_eq!(p.mode, SslMode::VerifyFull);
    assert_eq!(p.rootcert, explicit("/env/root.crt").map(RootCert::File));
    assert_eq!(p.cert, explicit("/env/c.crt"));
    assert_eq!(p.key, explicit("/env/c.key"));
    assert_eq!(p.crl, explicit("/env/x.crl"));
    assert_eq!(p.crldir, Some(PathBuf::from("/env/crls")));
    assert_eq!(p.negotiation, SslNegotiation::Direct);
    assert_eq!(p.channel_binding, ChannelBindingMode::Require);
    assert_eq!(p.certmode, SslCertMode::Disable);
    assert!(!p.sni);
    assert_eq!(p.min_protocol_version, Some(TlsVersion::Tls1_3));
    assert_eq!(p.max_protocol_version, Some(TlsVersion::Tls1_3));

    // The connection string wins over the environment; an empty keyword means the default.
    let p = resolve("sslmode=disable", &[("PGSSLMODE", "require")], None).unwrap();
    assert_eq!(p.ssl.mode, SslMode::Disable);
    let p = resolve("sslmode=''", &[("PGSSLMODE", "require")], None).unwrap();
    assert_eq!(p.ssl.mode, SslMode::Prefer);
    let p = resolve("", &[("PGSSLROOTCERT", "system")], None).unwrap();
    assert_eq!(p.ssl.rootcert, Some(RootCert::System));
    assert_eq!(p.ssl.mode, SslMode::VerifyFull);
}

#[test]
fn system_roots_imply_verify_full() {
    let p = ssl("sslrootcert=system");
    assert_eq!(p.rootcert, Some(RootCert::System));
    assert_eq!(p.mode, SslMode::VerifyFull);
    assert_eq!(
        ssl("sslrootcert=system sslmode=verify-full").mode,
        SslMode::VerifyFull
    );
    for weak in ["disable", "allow", "prefer", "require", "verify-ca"] {
        let e = err(&format!("sslrootcert=system sslmode={weak}"), &[]);
        assert!(
            e.contains(&format!(
                "weak sslmode \"{weak}\" may not be used with sslrootcert=system"
            )),
            "{e}"
        );
    }
    // PGSSLMODE counts as given.
    let e = err("sslrootcert=system", &[("PGSSLMODE", "require")]);
    assert!(e.contains("weak sslmode"), "{e}");
}

#[test]
fn refusals_name_the_keyword() {
    let cases: &[(&str, &str)] = &[
        ("sslmode=maybe", "invalid sslmode value: \"maybe\""),
        ("sslnegotiation=fast", "invalid sslnegotiation value"),
        (
            "sslmode=prefer sslnegotiation=direct",
            "weak sslmode \"prefer\" may not be used with sslnegotiation=direct",
        ),
        ("sslnegotiation=direct", "weak sslmode \"prefer\""),
        (
            "sslmode=allow sslnegotiation=direct",
            "weak sslmode \"allow\"",
        ),
        ("channel_binding=maybe", "invalid channel_binding value"),
        ("sslcertmode=sometimes", "invalid sslcertmode value"),
        ("sslsni=yes", "invalid sslsni value"),
        (
            "ssl_min_protocol_version=SSLv3",
            "invalid ssl_min_protocol_version value",
        ),
        (
            "ssl_max_protocol_version=TLSv2",
            "invalid ssl_max_protocol_version value",
        ),
        (
            "ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
            "invalid SSL protocol version range",
        ),
        ("sslkey=pkcs11:token", "OpenSSL engine"),
        ("sslpassword=hunter2", "sslpassword is not supported"),
    ];
    for (ci, want) in cases {
        let e = err(ci, &[]);
        assert!(e.contains(want), "{ci}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    let e = err("", &[("PGSSLMODE", "bogus")]);
    assert!(e.contains("invalid sslmode value"), "{e}");
    // Direct negotiation is allowed with the strong modes.
    for mode in ["require", "verify-ca", "verify-full"] {
        assert_eq!(
            ssl(&format!("sslmode={mode} sslnegotiation=direct")).negotiation,
            SslNegotiation::Direct
        );
    }
}

#[test]
fn rendering_keeps_what_was_given() {
    let ci = "host=db port=5432 user=u dbname=d sslmode=verify-ca sslnegotiation=direct \
              channel_binding=require sslcertmode=require sslrootcert=/r.crt sslcert=/c.crt \
              sslkey=/c.key sslcrl=/x.crl sslcrldir=/crls sslsni=0 \
              ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.3";
    let p = resolve(ci, &[], Some(Path::new("/home/a"))).unwrap();
    assert_eq!(
        p.to_conninfo_string(),
        "host=db port=5432 user=u dbname=d sslmode='verify-ca' sslnegotiation=direct \
         channel_binding=require sslcertmode=require sslrootcert='/r.crt' sslcert='/c.crt' \
         sslkey='/c.key' sslcrl='/x.crl' sslcrldir='/crls' sslsni=0 \
         ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.3"
    );
    assert_eq!(
        resolve(&p.to_conninfo_string(), &[], Some(Path::new("/home/a"))).unwrap(),
        p
    );
    // Defaults are not written (the default files are found again the same way).
    let p = resolve("host=db user=u dbname=d", &[], Some(Path::new("/home/a"))).unwrap();
    assert_eq!(p.to_conninfo_string(), "host=db port=5432 user=u dbname=d");
    let p = resolve("host=db user=u dbname=d sslrootcert=system", &[], None).unwrap();
    assert_eq!(
        p.to_conninfo_string(),
        "host=db port=5432 user=u dbname=d sslrootcert=system"
    );
}
