//! Server certificate verification as libpq does it: the chain (with revocation lists) only when
//! there are trusted roots to check against, the host name only for `verify-full` and by libpq's
//! rules (see [`super::cert`]). Handshake signatures are always checked.

use super::cert::check_host_name;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};

/// Why the certificate was refused, in words for the operator (rustls's own error only says
/// which alert it sent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    fn set(&self, why: String) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(why);
        }
    }

    /// The reason recorded during the handshake, if the verifier refused the certificate.
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

#[derive(Debug)]
pub(crate) struct LibpqVerifier {
    /// Checks the chain up to the trusted roots; `None`: no roots, no chain check.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The host name to find in the certificate (`verify-full`).
    host_name: Option<String>,
    algorithms: WebPkiSupportedAlgorithms,
    failure: Failure,
}

impl LibpqVerifier {
    pub(crate) fn new(
        chain: Option<Arc<WebPkiServerVerifier>>,
        host_name: Option<String>,
        algorithms: WebPkiSupportedAlgorithms,
        failure: Failure,
    ) -> Self {
        LibpqVerifier {
            chain,
            host_name,
            algorithms,
            failure,
        }
    }
}

/// A chain failure in plain words.
fn describe_chain_error(e: &rustls::Error) -> String {
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "it is not signed by a trusted root certificate".to_string()
            }
            CertificateError::Revoked => "it has been revoked".to_string(),
            CertificateError::UnknownRevocationStatus => {
                "no certificate revocation list covers it".to_string()
            }
            CertificateError::BadSignature => "its signature is invalid".to_string(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    format!("server certificate verification failed: {why}")
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            // webpki checks the name after the chain; names are checked below, libpq's way.
            match chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => {
                    self.failure.set(describe_chain_error(&e));
                    return Err(e);
                }
            }
        }
        if let Some(host) = &self.host_name {
            if let Err(why) = check_host_name(end_entity, host) {
                self.failure.set(why);
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
