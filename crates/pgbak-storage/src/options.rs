//! Typed options of the cloud backends, named after Barman's configuration where Barman has the
//! option. Anything left unset comes from the store's standard environment variables, and then
//! from the defaults documented on each field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string (account key, SAS token, connection string, secret access key). Its `Debug`
/// output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the code that signs requests.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

/// S3 bucket addressing (Barman's `--addressing-style`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddressingStyle {
    /// Path style (`https://endpoint/bucket/key`) when a custom endpoint is set, virtual-host
    /// style (`https://bucket.endpoint/key`) on AWS.
    #[default]
    Auto,
    /// Always path style.
    Path,
    /// Always virtual-host style.
    Virtual,
}

impl std::str::FromStr for AddressingStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AddressingStyle::Auto),
            "path" => Ok(AddressingStyle::Path),
            "virtual" => Ok(AddressingStyle::Virtual),
            _ => Err(format!(
                "unknown addressing style {s:?} (expected auto, path or virtual)"
            )),
        }
    }
}

/// S3 server-side encryption (Barman's `aws_encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Encryption {
    /// `AES256`: keys managed by S3.
    Aes256,
    /// `aws:kms`: keys in AWS KMS, optionally `aws_sse_kms_key_id`.
    AwsKms,
}

impl std::str::FromStr for S3Encryption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "AES256" => Ok(S3Encryption::Aes256),
            "aws:kms" => Ok(S3Encryption::AwsKms),
            _ => Err(format!(
                "unknown aws_encryption {s:?} (expected AES256 or aws:kms)"
            )),
        }
    }
}

/// When the AWS SDK adds its own CRC checksums to requests (`request_checksum_calculation`).
/// pgbak always sends `Content-MD5` and compares the ETags S3 returns, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumCalculation {
    /// Also send a CRC-32C with every upload (the SDK's default behaviour): for AWS.
    WhenSupported,
    /// Only when an operation requires one: for S3-compatible servers that reject the newer
    /// checksum headers or `aws-chunked` bodies.
    WhenRequired,
}

impl std::str::FromStr for ChecksumCalculation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "when_supported" => Ok(ChecksumCalculation::WhenSupported),
            "when_required" => Ok(ChecksumCalculation::WhenRequired),
            _ => Err(format!(
                "unknown checksum calculation {s:?} (expected when_supported or when_required)"
            )),
        }
    }
}

/// Entra ID credential for Azure (Barman's `azure_credential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureCredential {
    /// The user signed in to the Azure CLI (`az login`).
    AzureCli,
    /// The managed identity of the host (`AZURE_CLIENT_ID` picks a user-assigned one).
    ManagedIdentity,
    /// The default chain: environment service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`), managed
    /// identity, then the Azure CLI and Azure Developer CLI.
    Default,
}

impl std::str::FromStr for AzureCredential {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "azure-cli" => Ok(AzureCredential::AzureCli),
            "managed-identity" => Ok(AzureCredential::ManagedIdentity),
            "default" => Ok(AzureCredential::Default),
            _ => Err(format!(
                "unknown azure_credential {s:?} (expected azure-cli, managed-identity or default)"
            )),
        }
    }
}

/// Options of the cloud backends. `CloudOptions::default()` leaves everything to the
/// environment and the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudOptions {
    /// A custom endpoint (Barman's `--endpoint-url`): an S3-compatible server, an Azure Blob
    /// endpoint (e.g. `http://127.0.0.1:10000/devstoreaccount1` for Azurite) or a GCS JSON API
    /// endpoint. S3 also reads `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,

    /// AWS profile (`aws_profile`; else `AWS_PROFILE`).
    pub aws_profile: Option<String>,
    /// AWS region (`aws_region`; else `AWS_REGION`, the profile, IMDS; `us-east-1` when a
    /// custom endpoint is set and nothing else says).
    pub aws_region: Option<String>,
    /// Access key id, for callers that pass credentials directly instead of through the
    /// standard chain (environment, profiles, web identity, ECS, IMDS).
    pub aws_access_key_id: Option<String>,
    /// Secret access key that goes with `aws_access_key_id`.
    pub aws_secret_access_key: Option<Secret>,
    /// Session token that goes with `aws_access_key_id`.
    pub aws_session_token: Option<Secret>,
    /// Bucket addressing (`--addressing-style`).
    pub s3_addressing_style: AddressingStyle,
    /// Server-side encryption (`aws_encryption`).
    pub aws_encryption: Option<S3Encryption>,
    /// KMS key for `aws:kms` (`aws_sse_kms_key_id`).
    pub aws_sse_kms_key_id: Option<String>,
    /// Request checksums of the SDK (else `AWS_REQUEST_CHECKSUM_CALCULATION`, else
    /// when_supported). Response validation follows the same setting.
    pub s3_checksum_calculation: Option<ChecksumCalculation>,
    /// Set for S3-compatible servers that ignore `If-None-Match: *` on uploads: create-new
    /// uploads then check with HEAD just before completing (a narrow race remains).
    pub s3_no_conditional_writes: bool,

    /// Entra ID credential (`azure_credential`). When unset, pgbak uses, in order:
    /// `azure_connection_string`/`AZURE_STORAGE_CONNECTION_STRING`, then
    /// `azure_sas_token`/`AZURE_STORAGE_SAS_TOKEN`, then `azure_account_key`/`AZURE_STORAGE_KEY`.
    pub azure_credential: Option<AzureCredential>,
    /// Storage account for `azure://` URLs when no connection string names it (else
    /// `AZURE_STORAGE_ACCOUNT`).
    pub azure_account: Option<String>,
    /// Connection string.
    pub azure_connection_string: Option<Secret>,
    /// Shared access signature (query string, with or without a leading '?').
    pub azure_sas_token: Option<Secret>,
    /// Account key (base64).
    pub azure_account_key: Option<Secret>,

    /// Service account or other credentials JSON file (else `GOOGLE_APPLICATION_CREDENTIALS`,
    /// else application default credentials).
    pub gcp_credentials_file: Option<PathBuf>,
    /// A GCS emulator (`host:port` or URL; else `STORAGE_EMULATOR_HOST`): no authentication,
    /// as Google's own clients do.
    pub gcs_emulator_host: Option<String>,

    /// Per-request timeout, and the longest a download may stall (`aws_read_timeout`;
    /// default 60 s).
    pub read_timeout: Option<Duration>,
    /// Connection timeout (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// Attempts of a request on throttling, 5xx answers, timeouts and resets (default 8).
    pub max_attempts: Option<u32>,
    /// First backoff delay; each retry waits a random time up to twice the previous bound
    /// (default 250 ms).
    pub retry_base_delay: Option<Duration>,
    /// Longest backoff delay (default 20 s).
    pub retry_max_delay: Option<Duration>,
    /// Size of the parts of multipart uploads (`cloud_upload_min_chunk_size`; default 5 MiB as in
    /// Barman, at least 5 MiB, at most 512 MiB). An object no larger than one part takes one
    /// request.
    pub part_size: Option<u64>,
    /// Parts uploaded at once, across all uploads of one repository (default 2). Memory is
    /// bounded by (open uploads + this) × `part_size`.
    pub upload_concurrency: Option<usize>,
    /// Objects per batch delete request (`cloud_delete_batch_size`; default and S3's maximum
    /// 1000).
    pub delete_batch_size: Option<usize>,
    /// Names per listing request (default: the store's maximum, 1000 on S3 and GCS, 5000 on
    /// Azure).
    pub list_page_size: Option<u32>,
}

/// Default part size of multipart uploads: barman-cloud's, and S3's smallest, which keeps a
/// backup to object storage within 64 MB of memory (each upload holds its part being filled and
/// `upload_concurrency` parts in flight).
pub const DEFAULT_PART_SIZE: u64 = 5 << 20;
/// Smallest part size (S3's minimum for all parts but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Largest part size pgbak accepts.
pub const MAX_PART_SIZE: u64 = 512 << 20;

#[cfg_attr(not(feature = "cloud"), allow(dead_code))]
impl CloudOptions {
    pub(crate) fn part_size(&self) -> u64 {
        // Whole MiB: GCS wants chunks in multiples of 256 KiB.
        let v = self
            .part_size
            .unwrap_or(DEFAULT_PART_SIZE)
            .clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        v & !((1 << 20) - 1)
    }
    pub(crate) fn upload_concurrency(&self) -> usize {
        self.upload_concurrency.unwrap_or(2).clamp(1, 64)
    }
    pub(crate) fn delete_batch_size(&self) -> usize {
        self.delete_batch_size.unwrap_or(1000).clamp(1, 1000)
    }
    pub(crate) fn list_page_size(&self, store_max: u32) -> u32 {
        self.list_page_size.unwrap_or(store_max).clamp(1, store_max)
    }
    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(Duration::from_secs(60))
    }
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(Duration::from_secs(10))
    }
}

/// An environment variable that is set and not empty.
#[cfg_attr(not(feature = "cloud"), allow(dead_code))]
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show() {
        let o = CloudOptions {
            azure_account_key: Some(Secret::new("c2VjcmV0")),
            aws_secret_access_key: Some("topsecret".into()),
            ..Default::default()
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("topsecret"),
            "{shown}"
        );
    }

    #[test]
    fn option_words_parse_as_barman_writes_them() {
        assert_eq!("path".parse::<AddressingStyle>(), Ok(AddressingStyle::Path));
        assert_eq!("aws:kms".parse::<S3Encryption>(), Ok(S3Encryption::AwsKms));
        assert_eq!(
            "managed-identity".parse::<AzureCredential>(),
            Ok(AzureCredential::ManagedIdentity)
        );
        assert_eq!(
            "WHEN_REQUIRED".parse::<ChecksumCalculation>(),
            Ok(ChecksumCalculation::WhenRequired)
        );
        assert!("aes".parse::<S3Encryption>().is_err());
    }

    #[test]
    fn sizes_are_clamped_to_what_stores_accept() {
        let mut o = CloudOptions::default();
        assert_eq!(o.part_size(), DEFAULT_PART_SIZE);
        o.part_size = Some(1);
        assert_eq!(o.part_size(), MIN_PART_SIZE);
        o.delete_batch_size = Some(5000);
        assert_eq!(o.delete_batch_size(), 1000);
    }
}
