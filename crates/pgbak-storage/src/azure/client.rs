//! A small client of the Azure Blob REST API over reqwest: the requests pgbak needs (Put Blob,
//! Put Block, Put Block List, Get Blob, Get Blob Properties, List Blobs, Delete Blob, container
//! properties and creation), authorised by SharedKey, SAS or an Entra ID token, and the
//! classification of Azure's answers.

use crate::azure::auth::{shared_key_signature, Auth, Signable};
use crate::cloud::http::{header, retry_after, send_error};
use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Class, CloudError};
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use std::sync::atomic::AtomicBool;

/// The REST API version pgbak speaks (supported by Azure and Azurite 3.35).
pub(crate) const API_VERSION: &str = "2023-11-03";

/// What every request of one repository shares.
pub(crate) struct AzureInner {
    pub http: reqwest::Client,
    /// `https://ACCOUNT.blob.core.windows.net`, or Azurite's `http://host:port/ACCOUNT`.
    pub endpoint: String,
    pub container: String,
    pub prefix: String,
    pub repo: String,
    pub auth: Auth,
    pub policy: RetryPolicy,
    pub page_size: u32,
    pub container_seen: AtomicBool,
}

/// Characters kept as they are in blob paths: unreserved ones and '/'.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Characters kept as they are in query values.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One request, before authorisation.
pub(crate) struct Req<'a> {
    pub method: Method,
    /// The blob's full name, or `None` for the container itself.
    pub blob: Option<&'a str>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, blob: Option<&'a str>) -> Self {
        Req {
            method,
            blob,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_ascii_lowercase(), v.into()));
        self
    }
    pub fn body(mut self, b: Bytes) -> Self {
        self.body = b;
        self
    }
}

fn now_rfc1123() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

impl AzureInner {
    /// Sends one request (no retry) and returns the answer when it is a success.
    pub async fn send(&self, req: Req<'_>) -> Result<reqwest::Response, CloudError> {
        let base_path = self
            .endpoint
            .split_once("://")
            .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or(""))
            .unwrap_or("");
        let mut path = format!("{base_path}/{}", self.container);
        if let Some(b) = req.blob {
            path.push('/');
            path.push_str(&utf8_percent_encode(b, PATH).to_string());
        }
        let origin = self
            .endpoint
            .strip_suffix(base_path)
            .unwrap_or(&self.endpoint);
        let mut url = format!("{origin}{path}");
        let mut qs: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect();
        if let Auth::Sas(sas) = &self.auth {
            qs.push(sas.expose().trim_start_matches('?').to_string());
        }
        if !qs.is_empty() {
            url.push('?');
            url.push_str(&qs.join("&"));
        }
        let mut headers = req.headers;
        headers.push(("x-ms-version".into(), API_VERSION.into()));
        headers.push(("x-ms-date".into(), now_rfc1123()));
        match &self.auth {
            Auth::SharedKey { account, key } => {
                let sig = shared_key_signature(
                    account,
                    key,
                    &Signable {
                        method: req.method.as_str(),
                        path: &path,
                        query: &req.query,
                        headers: &headers,
                        content_length: req.body.len(),
                    },
                );
                headers.push(("authorization".into(), format!("SharedKey {account}:{sig}")));
            }
            Auth::Entra(e) => {
                let token = e.token().await?;
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
            Auth::Sas(_) => {}
        }
        let mut rb = self.http.request(req.method.clone(), &url);
        for (k, v) in &headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if req.method == Method::PUT {
            // Azure wants a Content-Length on every PUT, 0 included.
            rb = rb.header("content-length", req.body.len());
        }
        if !req.body.is_empty() || req.method == Method::PUT {
            rb = rb.body(req.body);
        }
        let resp = rb.send().await.map_err(send_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(error_of(resp).await)
    }
}

/// The error an unsuccessful answer means.
pub(crate) async fn error_of(resp: reqwest::Response) -> CloudError {
    let status = resp.status().as_u16();
    let code_header = header(resp.headers(), "x-ms-error-code").map(str::to_string);
    let ra = retry_after(resp.headers());
    let body = resp.text().await.unwrap_or_default();
    let code = code_header.or_else(|| xml_text(&body, "Code"));
    let message = xml_text(&body, "Message")
        .map(|m| m.lines().next().unwrap_or_default().to_string())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let lower = message.to_ascii_lowercase();
    let class = match code.as_deref() {
        _ if status == 400 && lower.contains("md5") && lower.contains("match") => Class::Checksum,
        Some("ContainerNotFound") => Class::NoSuchBucket,
        Some("BlobNotFound") | Some("ResourceNotFound") => Class::NotFound,
        Some("BlobAlreadyExists") | Some("ConditionNotMet") | Some("ContainerAlreadyExists") => {
            Class::Exists
        }
        Some("ServerBusy") => Class::Throttled,
        Some("OperationTimedOut") => Class::Timeout,
        Some("InternalError") => Class::Server,
        Some("Md5Mismatch") | Some("Crc64Mismatch") | Some("InvalidMd5") => Class::Checksum,
        Some("AuthenticationFailed")
        | Some("AuthorizationFailure")
        | Some("AuthorizationPermissionMismatch")
        | Some("AuthorizationResourceTypeMismatch")
        | Some("InsufficientAccountPermissions")
        | Some("NoAuthenticationInformation")
        | Some("InvalidAuthenticationInfo") => Class::Auth,
        _ => CloudError::class_of_status(status),
    };
    let mut e = CloudError::new(class, message).with_status(status);
    e.code = code;
    e.retry_after = ra;
    e
}

/// The text of the first `<tag>` of a small XML document (error bodies).
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// Resolves XML entities (`&amp;`, `&#39;`...).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses a List Blobs answer: (name, size, last modified) of blobs, prefixes, next marker.
pub(crate) struct Page {
    pub blobs: Vec<(String, u64, Option<String>)>,
    pub prefixes: Vec<String>,
    pub next_marker: Option<String>,
}

/// A List Blobs answer is plain XML (no CDATA, comments or namespaces): a small scanner of
/// tags and text is enough.
pub(crate) fn parse_list(xml: &str) -> Result<Page, CloudError> {
    let bad = || CloudError::new(Class::Other, "bad List Blobs answer");
    let mut path: Vec<&str> = Vec::new();
    let mut page = Page {
        blobs: Vec::new(),
        prefixes: Vec::new(),
        next_marker: None,
    };
    let mut name = String::new();
    let mut size = 0u64;
    let mut modified = None;
    let mut encoded = false;
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if !text.is_empty() {
            let text = unescape(text);
            match path.as_slice() {
                [.., "Blob", "Name"] | [.., "BlobPrefix", "Name"] => {
                    name = if encoded {
                        percent_encoding::percent_decode_str(&text)
                            .decode_utf8_lossy()
                            .into_owned()
                    } else {
                        text
                    };
                }
                [.., "Properties", "Content-Length"] => size = text.trim().parse().unwrap_or(0),
                [.., "Properties", "Last-Modified"] => modified = Some(text),
                ["EnumerationResults", "NextMarker"] if !text.trim().is_empty() => {
                    page.next_marker = Some(text);
                }
                _ => {}
            }
        }
        let gt = rest[lt..].find('>').ok_or_else(bad)? + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(closing) = tag.strip_prefix('/') {
            match path.pop() {
                Some(open) if open == closing.trim() => {}
                _ => return Err(bad()),
            }
            match closing.trim() {
                "Blob" => page
                    .blobs
                    .push((std::mem::take(&mut name), size, modified.take())),
                "BlobPrefix" => page.prefixes.push(std::mem::take(&mut name)),
                _ => {}
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (tname, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if self_closing {
            continue;
        }
        if tname == "Name" {
            encoded = attrs.contains("Encoded=\"true\"");
        }
        if tname == "Blob" || tname == "BlobPrefix" {
            name.clear();
            size = 0;
            modified = None;
        }
        path.push(tname);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_parse() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/" ContainerName="c"><Prefix>p/</Prefix><Delimiter>/</Delimiter><Blobs><Blob><Name>p/a&amp;b</Name><Properties><Last-Modified>Fri, 04 Dec 2026 17:29:46 GMT</Last-Modified><Content-Length>12</Content-Length></Properties></Blob><BlobPrefix><Name>p/sub/</Name></BlobPrefix></Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let p = parse_list(xml).unwrap();
        assert_eq!(p.blobs.len(), 1);
        assert_eq!(p.blobs[0].0, "p/a&b");
        assert_eq!(p.blobs[0].1, 12);
        assert_eq!(p.prefixes, ["p/sub/"]);
        assert_eq!(p.next_marker.as_deref(), Some("2!abc"));
        let empty =
            parse_list("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>").unwrap();
        assert!(empty.blobs.is_empty() && empty.next_marker.is_none());
    }

    #[test]
    fn error_bodies_parse() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:1</Message></Error>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("BlobNotFound"));
    }
}
