//! What pgbak reads inside a server certificate: the names `verify-full` compares with the host
//! name, by libpq's rules (subjectAltName entries of the host's kind first, the Common Name only
//! when there are none, a wildcard covering exactly one leftmost label), and the hash
//! `tls-server-end-point` channel binding sends (RFC 5929: the certificate's own signature hash,
//! SHA-256 for MD5 and SHA-1).

use sha2::Digest;
use std::net::IpAddr;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// A name the certificate presents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presented {
    Dns(String),
    Ip(Vec<u8>),
    CommonName(String),
}

impl Presented {
    fn display(&self) -> String {
        match self {
            Presented::Dns(s) | Presented::CommonName(s) => s.clone(),
            Presented::Ip(b) => match <[u8; 4]>::try_from(b.as_slice()) {
                Ok(v4) => IpAddr::from(v4).to_string(),
                Err(_) => match <[u8; 16]>::try_from(b.as_slice()) {
                    Ok(v6) => IpAddr::from(v6).to_string(),
                    Err(_) => format!("{b:02x?}"),
                },
            },
        }
    }
}

/// libpq's `wildcard_certificate_match`: `*.example.com` matches `db.example.com` but neither
/// `example.com` nor `a.db.example.com`.
fn wildcard_match(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.as_bytes(), host.as_bytes());
    if p.len() < 3 || p[0] != b'*' || p[1] != b'.' || p.len() > h.len() {
        return false;
    }
    let tail_start = h.len() - p.len() + 1;
    if !p[1..].eq_ignore_ascii_case(&h[tail_start..]) {
        return false;
    }
    // No dot may stand left of where the pattern's tail begins.
    !h[..tail_start].contains(&b'.')
}

fn name_matches(name: &str, host: &str) -> bool {
    name.eq_ignore_ascii_case(host) || wildcard_match(name, host)
}

fn ip_matches(octets: &[u8], host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => octets == a.octets(),
        Ok(IpAddr::V6(a)) => octets == a.octets(),
        Err(_) => false,
    }
}

/// The text of a directory-string attribute value; `None` when it holds a NUL byte, which libpq
/// refuses ("embedded null").
fn attribute_text(value: &x509_cert::attr::AttributeValue) -> Result<String, String> {
    let bytes = value.value();
    let text = match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    if text.contains('\0') {
        return Err("SSL certificate's name contains embedded null".to_string());
    }
    Ok(text)
}

fn presented_names(cert: &Certificate) -> Result<(Vec<Presented>, Vec<String>), String> {
    let mut sans = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|e| format!("cannot parse the server certificate's subjectAltName: {e}"))?;
        for name in san.0 {
            match name {
                GeneralName::DnsName(n) => {
                    let s = n.as_str();
                    if s.contains('\0') {
                        return Err("SSL certificate's name contains embedded null".to_string());
                    }
                    sans.push(Presented::Dns(s.to_string()));
                }
                GeneralName::IpAddress(o) => sans.push(Presented::Ip(o.as_bytes().to_vec())),
                _ => {}
            }
        }
    }
    let mut cns = Vec::new();
    for rdn in &cert.tbs_certificate.subject.0 {
        for atv in rdn.0.iter() {
            if atv.oid == OID_COMMON_NAME {
                cns.push(attribute_text(&atv.value)?);
            }
        }
    }
    Ok((sans, cns))
}

/// Checks that the server certificate `der` names `host` as libpq's `verify-full` requires.
/// The error is the sentence to show.
pub(crate) fn check_host_name(der: &[u8], host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host name must be specified for a verified SSL connection".to_string());
    }
    let cert = Certificate::from_der(der)
        .map_err(|e| format!("cannot parse the server certificate: {e}"))?;
    let (sans, cns) = presented_names(&cert)?;
    let host_is_ip = host.parse::<IpAddr>().is_ok();
    let mut examined = Vec::new();
    // A subjectAltName of the host's own kind hides the Common Name (RFC 6125).
    let mut check_cn = true;
    for san in &sans {
        let matched = match san {
            Presented::Dns(n) => {
                check_cn &= host_is_ip;
                name_matches(n, host)
            }
            Presented::Ip(o) => {
                check_cn &= !host_is_ip;
                ip_matches(o, host)
            }
            Presented::CommonName(_) => false,
        };
        if matched {
            return Ok(());
        }
        examined.push(san.clone());
    }
    if check_cn {
        // libpq looks at the first Common Name only.
        if let Some(cn) = cns.first() {
            if name_matches(cn, host) {
                return Ok(());
            }
            examined.push(Presented::CommonName(cn.clone()));
        }
    }
    Err(match examined.as_slice() {
        [] => "could not get server's host name from server certificate".to_string(),
        [one] => format!(
            "server certificate for \"{}\" does not match host name \"{host}\"",
            one.display()
        ),
        [first, rest @ ..] => format!(
            "server certificate for \"{}\" (and {} other name{}) does not match host name \"{host}\"",
            first.display(),
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    })
}

/// The `tls-server-end-point` channel-binding data of the server certificate `der`: its hash with
/// the certificate's signature digest (SHA-256 for MD5 and SHA-1). `None` when the signature
/// algorithm names no such digest (RSASSA-PSS, Ed25519): PostgreSQL cannot bind those either.
pub(crate) fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    let cert = Certificate::from_der(der).ok()?;
    let oid = cert.signature_algorithm.oid.to_string();
    let digest = match oid.as_str() {
        // md5WithRSA, sha1WithRSA, dsa-with-sha1, ecdsa-with-SHA1, sha256WithRSA,
        // dsa-with-sha256, ecdsa-with-SHA256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.10040.4.3"
        | "1.2.840.10045.4.1"
        | "1.2.840.113549.1.1.11"
        | "2.16.840.1.101.3.4.3.2"
        | "1.2.840.10045.4.3.2" => sha2::Sha256::digest(der).to_vec(),
        // sha224WithRSA, ecdsa-with-SHA224
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => sha2::Sha224::digest(der).to_vec(),
        // sha384WithRSA, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(der).to_vec(),
        // sha512WithRSA, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    };
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_match("*.example.com", "db.example.com"));
        assert!(wildcard_match("*.example.com", "DB.Example.COM"));
        assert!(!wildcard_match("*.example.com", "a.db.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(!wildcard_match("*.example.com", ".example.com"));
        assert!(!wildcard_match("db*.example.com", "db1.example.com"));
        assert!(!wildcard_match("*", "anything"));
    }

    #[test]
    fn subject_alt_names_then_common_name() {
        let c = cert(&["db.example.com", "127.0.0.1"], Some("other.example.com"));
        assert_eq!(check_host_name(&c, "db.example.com"), Ok(()));
        assert_eq!(check_host_name(&c, "DB.EXAMPLE.COM"), Ok(()));
        assert_eq!(check_host_name(&c, "127.0.0.1"), Ok(()));
        // A DNS subjectAltName hides the Common Name for a host name.
        let err = check_host_name(&c, "other.example.com").unwrap_err();
        assert_eq!(
            err,
            "server certificate for \"db.example.com\" (and 1 other name) does not match host name \"other.example.com\""
        );
        assert!(check_host_name(&c, "127.0.0.2").is_err());
        assert!(check_host_name(&c, "")
            .unwrap_err()
            .contains("must be specified"));

        // No subjectAltName: the Common Name decides, as in PostgreSQL's own certificate recipe.
        let c = cert(&[], Some("db.example.com"));
        assert_eq!(check_host_name(&c, "db.example.com"), Ok(()));
        assert_eq!(
            check_host_name(&c, "x.example.com").unwrap_err(),
            "server certificate for \"db.example.com\" does not match host name \"x.example.com\""
        );

        // Only DNS names: an IP host falls back to the Common Name.
        let c = cert(&["db.example.com"], Some("10.1.2.3"));
        assert_eq!(check_host_name(&c, "10.1.2.3"), Ok(()));
        // Only an IP subjectAltName: a DNS host may still match the Common Name.
        let c = cert(&["10.1.2.3"], Some("db.example.com"));
        assert_eq!(check_host_name(&c, "db.example.com"), Ok(()));
        assert!(check_host_name(&c, "10.1.2.4").is_err());
        // IPv6 in its canonical and expanded spellings.
        let c = cert(&["::1"], None);
        assert_eq!(check_host_name(&c, "0:0:0:0:0:0:0:1"), Ok(()));
        assert_eq!(
            check_host_name(&c, "::2").unwrap_err(),
            "server certificate for \"::1\" does not match host name \"::2\""
        );
        // Wildcards in subjectAltNames.
        let c = cert(&["*.example.com"], None);
        assert_eq!(check_host_name(&c, "db.example.com"), Ok(()));
        assert!(check_host_name(&c, "a.b.example.com").is_err());
        // Nothing at all.
        let c = cert(&[], None);
        assert!(check_host_name(&c, "db")
            .unwrap_err()
            .contains("could not get server's host name"));
        assert!(check_host_name(b"not a certificate", "db").is_err());
    }

    #[test]
    fn end_point_hash_follows_the_signature_digest() {
        let c = cert(&["db"], None);
        // rcgen signs with ECDSA P-256 / SHA-256 by default.
        assert_eq!(
            tls_server_end_point(&c),
            Some(sha2::Sha256::digest(&c).to_vec())
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let c384 = rcgen::CertificateParams::new(vec!["db".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec();
        assert_eq!(
            tls_server_end_point(&c384),
            Some(sha2::Sha384::digest(&c384).to_vec())
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed = rcgen::CertificateParams::new(vec!["db".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec();
        assert_eq!(tls_server_end_point(&ed), None);
        assert_eq!(tls_server_end_point(b"junk"), None);
    }
}
