//! The HTTP client shared by the Azure and GCS backends (reqwest over rustls with ring), and the
//! classification of its errors and of HTTP answers.

use crate::cloud::{init_tls, Class, CloudError};
use crate::CloudOptions;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// A client with the repository's connection timeout; per-request timeouts come from the retry
/// layer.
pub(crate) fn client(opts: &CloudOptions) -> Result<reqwest::Client, CloudError> {
    init_tls();
    reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout())
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("pgbak/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            CloudError::new(
                Class::Other,
                format!("cannot build the HTTP client: {}", chain(&e)),
            )
        })
}

/// The error of a request that got no answer, without its URL (which may carry a SAS token).
pub(crate) fn send_error(e: reqwest::Error) -> CloudError {
    let class = if e.is_timeout() {
        Class::Timeout
    } else if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        Class::Connection
    } else {
        Class::Other
    };
    CloudError::new(class, chain(&e.without_url()))
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The `Retry-After` of an answer, in seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A header as text.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The body stream of an answer, with errors classified.
pub(crate) fn body_stream(
    resp: reqwest::Response,
) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, CloudError>> {
    use futures_util::StreamExt;
    resp.bytes_stream().map(|r| r.map_err(send_error)).boxed()
}

/// Parses an HTTP date (`Last-Modified`).
pub(crate) fn http_date(s: &str) -> Option<std::time::SystemTime> {
    chrono::DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        let t = http_date("Fri, 04 Dec 2026 17:29:46 GMT").unwrap();
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_796_405_386);
    }
}
