//! Entry points for the fuzz targets in `fuzz/`: the smallest openings into parsers that are not
//! public otherwise. Not part of the API; nothing outside the fuzz targets may use them.

use crate::{ConnParams, ReplicationClient, Result};
use tokio::io::{AsyncRead, AsyncWrite};

/// A replication client over `socket`, after the startup exchange (the other end plays the
/// server).
pub async fn replication_client_over<S>(socket: S, params: &ConnParams) -> Result<ReplicationClient>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ReplicationClient::from_socket(Box::new(socket), params).await
}

/// The password the text of a password file (`.pgpass`) gives for these connection parameters.
pub fn pgpass_password(
    text: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    crate::conninfo::pgpass::match_password_file(text, host, port, dbname, user)
}
