//! The S3 client: configuration from the options and the standard AWS environment (credential
//! chain and profiles, `AWS_REGION`, `AWS_ENDPOINT_URL[_S3]`, `AWS_REQUEST_CHECKSUM_CALCULATION`),
//! addressing style, and the classification of S3's answers.

use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Class, CloudError};
use crate::location::redact_url;
use crate::options::env;
use crate::{AddressingStyle, ChecksumCalculation, CloudOptions, S3Encryption};
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// What every S3 request of one repository shares.
pub(crate) struct S3Inner {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
    pub repo: String,
    pub policy: RetryPolicy,
    pub encryption: Option<S3Encryption>,
    pub kms_key_id: Option<String>,
    /// The SDK adds CRC-32C checksums to uploads (when_supported).
    pub crc: bool,
    /// The store honours `If-None-Match: *` on uploads.
    pub conditional_writes: bool,
    pub delete_batch_size: usize,
    pub page_size: i32,
    /// Set once the bucket is known to exist (a 404 on HEAD says nothing about which is missing).
    pub bucket_seen: AtomicBool,
}

impl S3Inner {
    /// Whether ETags are MD5s of the content (not with KMS encryption).
    pub fn etags_are_md5(&self) -> bool {
        self.encryption != Some(S3Encryption::AwsKms)
    }
}

/// The custom endpoint, from the options or the environment, unless the environment says to
/// ignore configured endpoints.
pub(crate) fn custom_endpoint(opts: &CloudOptions) -> Option<String> {
    if let Some(e) = &opts.endpoint_url {
        return Some(e.clone());
    }
    if env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"))
}

/// Builds the client (loading shared configuration, which may read profile files).
pub(crate) async fn build(
    opts: CloudOptions,
    endpoint: Option<String>,
) -> Result<aws_sdk_s3::Client, CloudError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(opts.connect_timeout())
                .build(),
        );
    if let Some(p) = &opts.aws_profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = &endpoint {
        loader = loader.endpoint_url(e);
    }
    if let Some(r) = &opts.aws_region {
        loader = loader.region(Region::new(r.clone()));
    } else if endpoint.is_some() {
        // S3-compatible servers: the environment or the profile, else us-east-1 (as boto3 does),
        // without asking the EC2 metadata service.
        let mut profile = aws_config::profile::ProfileFileRegionProvider::builder();
        if let Some(p) = &opts.aws_profile {
            profile = profile.profile_name(p);
        }
        loader = loader.region(
            RegionProviderChain::first_try(
                aws_config::environment::EnvironmentVariableRegionProvider::new(),
            )
            .or_else(profile.build())
            .or_else(Region::new("us-east-1")),
        );
    }
    if let Some(id) = &opts.aws_access_key_id {
        let secret = opts
            .aws_secret_access_key
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let token = opts
            .aws_session_token
            .as_ref()
            .map(|s| s.expose().to_string());
        loader = loader.credentials_provider(Credentials::new(id, secret, token, None, "pgbak"));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(CloudError::new(
            Class::Other,
            "no AWS region: set aws_region, AWS_REGION or a region in the AWS profile",
        ));
    }
    let path_style = match opts.s3_addressing_style {
        AddressingStyle::Path => true,
        AddressingStyle::Virtual => false,
        AddressingStyle::Auto => endpoint.is_some(),
    };
    let mut conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(path_style);
    if let Some(c) = opts.s3_checksum_calculation {
        let (req, resp) = match c {
            ChecksumCalculation::WhenSupported => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
            ChecksumCalculation::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
        };
        conf = conf
            .request_checksum_calculation(req)
            .response_checksum_validation(resp);
    }
    Ok(aws_sdk_s3::Client::from_conf(conf.build()))
}

/// Whether the SDK adds CRC checksums of its own: the option, else the environment, else yes.
pub(crate) fn sdk_checksums(opts: &CloudOptions) -> bool {
    match opts.s3_checksum_calculation {
        Some(c) => c == ChecksumCalculation::WhenSupported,
        None => !env("AWS_REQUEST_CHECKSUM_CALCULATION")
            .is_some_and(|v| v.eq_ignore_ascii_case("when_required")),
    }
}

/// How the repository is shown: its URL, and the endpoint when it is not AWS.
pub(crate) fn describe(bucket: &str, prefix: &str, endpoint: Option<&str>) -> String {
    let mut s = format!("s3://{bucket}");
    if !prefix.is_empty() {
        s.push('/');
        s.push_str(prefix);
    }
    if let Some(e) = endpoint {
        s.push_str(" at ");
        s.push_str(&redact_url(e));
    }
    s
}

/// What an SDK error means.
pub(crate) fn classify<E>(e: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().map(str::to_string);
            let message = se
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let class = match code.as_deref() {
                Some("NoSuchBucket") => Class::NoSuchBucket,
                Some("NoSuchKey") | Some("NotFound") | Some("NoSuchUpload") => Class::NotFound,
                Some("PreconditionFailed") => Class::Exists,
                Some("SlowDown")
                | Some("Throttling")
                | Some("ThrottlingException")
                | Some("RequestLimitExceeded")
                | Some("ServiceUnavailable")
                | Some("ConditionalRequestConflict") => Class::Throttled,
                Some("InternalError") => Class::Server,
                Some("NotImplemented") => Class::Other,
                Some("RequestTimeout") => Class::Timeout,
                Some("BadDigest")
                | Some("InvalidDigest")
                | Some("XAmzContentSHA256Mismatch")
                | Some("XAmzContentChecksumMismatch") => Class::Checksum,
                Some("AccessDenied")
                | Some("InvalidAccessKeyId")
                | Some("SignatureDoesNotMatch")
                | Some("ExpiredToken")
                | Some("InvalidToken")
                | Some("AllAccessDisabled")
                | Some("AccountProblem") => Class::Auth,
                _ => CloudError::class_of_status(status),
            };
            let retry_after = se
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut ce = CloudError::new(class, message).with_status(status);
            ce.code = code;
            ce.retry_after = retry_after;
            ce
        }
        SdkError::TimeoutError(_) => CloudError::new(Class::Timeout, chain(&e)),
        SdkError::DispatchFailure(d) => {
            let class = if d.is_timeout() {
                Class::Timeout
            } else if d.is_io() {
                Class::Connection
            } else if d.is_user() {
                Class::Other
            } else {
                Class::Connection
            };
            let msg = chain(&e);
            CloudError::new(auth_if_credentials(class, &msg), msg)
        }
        SdkError::ResponseError(_) => CloudError::new(Class::Connection, chain(&e)),
        _ => {
            let msg = chain(&e);
            CloudError::new(auth_if_credentials(Class::Other, &msg), msg)
        }
    }
}

/// Failures to find or load credentials surface as request construction errors.
fn auth_if_credentials(class: Class, msg: &str) -> Class {
    let m = msg.to_ascii_lowercase();
    if m.contains("credential") || m.contains("identity") {
        Class::Auth
    } else {
        class
    }
}

fn chain(e: &dyn std::error::Error) -> String {
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
