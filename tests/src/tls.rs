//! Certificates made by the test, for clusters with `ssl = on`: a CA, a server certificate
//! installed in a data directory (with the CA as `ssl_ca_file`, for `cert` authentication), client
//! certificates, and a second CA that signed nothing. Key files belong to the cluster owner, mode
//! 0600, as PostgreSQL and libpq demand.

use crate::{give_to_owner, postgres_tempdir};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A test certificate authority and the files it made.
pub struct TestPki {
    /// Holds the CA files and client certificates.
    pub dir: tempfile::TempDir,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn write_private(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, body).expect("write certificate file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    give_to_owner(path);
}

fn ca_params(name: &str) -> CertificateParams {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca
}

impl TestPki {
    /// A new CA (`root.crt`) and an unrelated one (`other-root.crt`).
    pub fn new() -> TestPki {
        let dir = postgres_tempdir();
        let key = KeyPair::generate().expect("CA key");
        let params = ca_params("pgbak test CA");
        let ca_pem = params.self_signed(&key).expect("CA").pem();
        write_private(&dir.path().join("root.crt"), &ca_pem, 0o644);
        let other_key = KeyPair::generate().expect("key");
        let other = ca_params("unrelated CA")
            .self_signed(&other_key)
            .expect("other CA")
            .pem();
        write_private(&dir.path().join("other-root.crt"), &other, 0o644);
        TestPki {
            dir,
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate (`sslrootcert`).
    pub fn root_crt(&self) -> PathBuf {
        self.dir.path().join("root.crt")
    }

    /// A CA certificate that signed nothing here.
    pub fn other_root_crt(&self) -> PathBuf {
        self.dir.path().join("other-root.crt")
    }

    /// Writes `server.crt` (for `names`, DNS names or IP addresses), `server.key` and `root.crt`
    /// into `data_dir`, and returns the postgresql.conf lines that turn SSL on with them.
    pub fn install_server(&self, data_dir: &Path, names: &[&str]) -> Vec<String> {
        let key = KeyPair::generate().expect("server key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        write_private(&data_dir.join("server.crt"), &cert.pem(), 0o644);
        write_private(&data_dir.join("server.key"), &key.serialize_pem(), 0o600);
        write_private(&data_dir.join("root.crt"), &self.ca_pem, 0o644);
        vec![
            "ssl = on".to_string(),
            "ssl_cert_file = 'server.crt'".to_string(),
            "ssl_key_file = 'server.key'".to_string(),
            "ssl_ca_file = 'root.crt'".to_string(),
        ]
    }

    /// A client certificate for database user `user` (its Common Name) and its key (mode 0600,
    /// owned by the cluster owner, who runs pgbak in the tests): `(cert, key)`.
    pub fn client(&self, user: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        let cert_path = self.dir.path().join(format!("{user}.crt"));
        let key_path = self.dir.path().join(format!("{user}.key"));
        write_private(&cert_path, &cert.pem(), 0o644);
        write_private(&key_path, &key.serialize_pem(), 0o600);
        (cert_path, key_path)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
