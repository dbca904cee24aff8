//! Pure pieces of the replication protocol, fed with bytes and strings: building BASE_BACKUP
//! commands for each server generation, framing backend messages, decoding the messages that
//! `postgres-protocol` does not know (CopyBothResponse) or whose raw fields we want
//! (ErrorResponse/NoticeResponse), the PostgreSQL 15+ BASE_BACKUP stream, and version strings;
//! [`stream`] holds the same for START_REPLICATION (WAL streaming, slots, timeline histories).
//!
//! The async client in [`crate::replication`] only moves these over a socket.

use crate::error::DbError;
use crate::replication::BaseBackupOptions;
use crate::{Error, Result};

pub mod stream;

/// Tag of CopyBothResponse, which START_REPLICATION answers with.
pub const COPY_BOTH_RESPONSE_TAG: u8 = b'W';
/// Tag of ErrorResponse.
pub const ERROR_RESPONSE_TAG: u8 = b'E';
/// Tag of NoticeResponse.
pub const NOTICE_RESPONSE_TAG: u8 = b'N';

/// Largest backend message accepted. PostgreSQL never builds a message above 1 GiB (`MaxAllocSize`);
/// anything longer is a corrupt stream, and refusing it keeps a bad length word from allocating
/// gigabytes.
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// Oldest server whose BASE_BACKUP (with MANIFEST) this crate speaks.
pub const MIN_SERVER_VERSION_NUM: u32 = 130000;

/// First server version with the parenthesised BASE_BACKUP option syntax and the multiplexed stream.
pub const NEW_BASE_BACKUP_SYNTAX_VERSION_NUM: u32 = 150000;

/// The first release with block-level incremental backups (`UPLOAD_MANIFEST`, BASE_BACKUP's
/// `INCREMENTAL`, WAL summaries).
pub const INCREMENTAL_BACKUP_VERSION_NUM: u32 = 170000;

/// Looks at the start of `buf` for one complete backend message: returns its tag and total length
/// (tag byte and length word included), or `None` when more bytes are needed.
pub fn peek_frame(buf: &[u8]) -> Result<Option<(u8, usize)>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len < 4 {
        return Err(Error::protocol(format!(
            "message length {len} is below the minimum of 4"
        )));
    }
    if len > MAX_MESSAGE_LEN {
        return Err(Error::protocol(format!(
            "message of type '{}' claims {len} bytes, more than PostgreSQL ever sends",
            char::from(buf[0]).escape_default()
        )));
    }
    let total = len + 1;
    Ok((buf.len() >= total).then_some((buf[0], total)))
}

/// The formats announced by a CopyBothResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyBothResponse {
    /// Overall format: 0 text, 1 binary (replication streams are binary).
    pub format: u8,
    /// Per-column format codes.
    pub column_formats: Vec<u16>,
}

/// Decodes the body (after tag and length) of a CopyBothResponse (`'W'`).
pub fn parse_copy_both_response(body: &[u8]) -> Result<CopyBothResponse> {
    let bad = || Error::protocol("truncated CopyBothResponse");
    let (&format, rest) = body.split_first().ok_or_else(bad)?;
    let n = rest.get(..2).ok_or_else(bad)?;
    let n = u16::from_be_bytes([n[0], n[1]]) as usize;
    let cols = rest.get(2..2 + 2 * n).ok_or_else(bad)?;
    if rest.len() != 2 + 2 * n {
        return Err(Error::protocol("trailing bytes after CopyBothResponse"));
    }
    Ok(CopyBothResponse {
        format,
        column_formats: cols
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect(),
    })
}

/// Decodes the fields of an ErrorResponse or NoticeResponse body. The non-localized severity (`V`)
/// is preferred so that messages read the same whatever `lc_messages` says.
pub fn parse_error_fields(body: &[u8]) -> Result<DbError> {
    let mut e = DbError::default();
    let mut localized_severity = None;
    let mut rest = body;
    loop {
        let Some((&kind, after)) = rest.split_first() else {
            return Err(Error::protocol("ErrorResponse without terminator"));
        };
        if kind == 0 {
            break;
        }
        let nul = after
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::protocol("unterminated field in ErrorResponse"))?;
        let value = String::from_utf8_lossy(&after[..nul]).into_owned();
        rest = &after[nul + 1..];
        match kind {
            b'S' => localized_severity = Some(value),
            b'V' => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
    }
    if e.severity.is_empty() {
        e.severity = localized_severity.unwrap_or_else(|| "ERROR".to_string());
    }
    Ok(e)
}

/// One CopyData payload of a PostgreSQL 15+ BASE_BACKUP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseBackupMessage<'a> {
    /// `'n'`: a new tar archive starts. `tablespace_location` is `None` for the data directory.
    NewArchive {
        /// Archive name, e.g. `base.tar` or `16385.tar`; checked to be a plain file name.
        name: &'a str,
        /// Tablespace directory on the server.
        tablespace_location: Option<&'a str>,
    },
    /// `'d'`: bytes of the current archive or of the manifest.
    Data(&'a [u8]),
    /// `'p'`: bytes sent so far.
    Progress(u64),
    /// `'m'`: the manifest follows (as `'d'` messages).
    ManifestStart,
}

fn cstr(buf: &[u8]) -> Result<(&str, &[u8])> {
    let nul = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::protocol("unterminated string in BASE_BACKUP stream"))?;
    let s = std::str::from_utf8(&buf[..nul])
        .map_err(|_| Error::protocol("string in BASE_BACKUP stream is not valid UTF-8"))?;
    Ok((s, &buf[nul + 1..]))
}

/// Decodes one CopyData payload of the PostgreSQL 15+ BASE_BACKUP stream. Empty payloads carry no
/// type byte and must be skipped by the caller; they are an error here.
pub fn parse_base_backup_message(payload: &[u8]) -> Result<BaseBackupMessage<'_>> {
    let Some((&kind, rest)) = payload.split_first() else {
        return Err(Error::protocol("empty BASE_BACKUP stream message"));
    };
    match kind {
        b'n' => {
            let (name, rest) = cstr(rest)?;
            let (location, _) = cstr(rest)?;
            // The name becomes a file name on the backup host: never let the server pick a path.
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\\')
            {
                return Err(Error::protocol(format!(
                    "archive name {name:?} is not a plain file name"
                )));
            }
            Ok(BaseBackupMessage::NewArchive {
                name,
                tablespace_location: (!location.is_empty()).then_some(location),
            })
        }
        b'd' => Ok(BaseBackupMessage::Data(rest)),
        b'p' => {
            let raw: [u8; 8] = rest
                .try_into()
                .map_err(|_| Error::protocol("progress message must carry exactly 8 bytes"))?;
            let done = i64::from_be_bytes(raw);
            u64::try_from(done)
                .map(BaseBackupMessage::Progress)
                .map_err(|_| Error::protocol(format!("negative progress {done}")))
        }
        b'm' => Ok(BaseBackupMessage::ManifestStart),
        other => Err(Error::protocol(format!(
            "unknown BASE_BACKUP stream message type '{}'",
            char::from(other).escape_default()
        ))),
    }
}

/// Parses the `server_version` parameter into `server_version_num` form: "15.18 (Debian ...)" is
/// 150018, "9.6.3" is 90603, "17devel" and "16beta1" are 170000 and 160000.
pub fn parse_server_version(text: &str) -> Result<u32> {
    let bad = || Error::UnsupportedServerVersion {
        version: text.to_string(),
        reason: "cannot parse the server version".to_string(),
    };
    fn number(s: &str) -> Option<(u32, &str)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 || end > 6 {
            return None;
        }
        Some((s[..end].parse().ok()?, &s[end..]))
    }
    let (major, mut rest) = number(text.trim_start()).ok_or_else(bad)?;
    let mut parts = [major, 0, 0];
    for part in parts.iter_mut().skip(1) {
        match rest.strip_prefix('.').and_then(number) {
            Some((n, r)) => {
                *part = n;
                rest = r;
            }
            None => break,
        }
    }
    let [major, minor, patch] = parts;
    let num = if major >= 10 {
        major
            .checked_mul(10000)
            .and_then(|m| m.checked_add(minor.min(9999)))
    } else {
        Some(major * 10000 + minor.min(99) * 100 + patch.min(99))
    };
    num.ok_or_else(bad)
}

/// Parses a size setting as SHOW prints it (`16MB`, `1GB`, `512kB`, `8192`) into bytes.
pub fn parse_size_setting(text: &str) -> Option<u64> {
    let text = text.trim();
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..end].parse().ok()?;
    let mult: u64 = match text[end..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Quotes a string literal for the replication command grammar, which knows only `''` as an escape.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl BaseBackupOptions {
    /// The BASE_BACKUP command for a server of `server_version_num`: the parenthesised option list
    /// from PostgreSQL 15, the old keywords on 13 and 14. Older servers are refused (no manifests).
    pub fn command(&self, server_version_num: u32) -> Result<String> {
        if server_version_num < MIN_SERVER_VERSION_NUM {
            return Err(Error::UnsupportedServerVersion {
                version: server_version_num.to_string(),
                reason: "streaming base backups need PostgreSQL 13 or later".to_string(),
            });
        }
        let bad = |option: &str, reason: &str| Error::InvalidOption {
            option: format!("BASE_BACKUP option {option}"),
            reason: reason.to_string(),
        };
        if self.label.contains('\0') {
            return Err(bad("LABEL", "contains a NUL character"));
        }
        let checksums = match (&self.manifest_checksums, self.manifest) {
            (Some(c), true) => {
                if c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(bad(
                        "MANIFEST_CHECKSUMS",
                        "must be an algorithm name such as CRC32C or SHA256",
                    ));
                }
                Some(c.as_str())
            }
            _ => None,
        };

        if let Some(c) = &self.server_compression {
            if server_version_num < NEW_BASE_BACKUP_SYNTAX_VERSION_NUM {
                return Err(Error::UnsupportedServerVersion {
                    version: server_version_num.to_string(),
                    reason: "compression on the server needs PostgreSQL 15 or later".to_string(),
                });
            }
            if !matches!(c.method.as_str(), "gzip" | "lz4" | "zstd") {
                return Err(bad("COMPRESSION", "must be gzip, lz4 or zstd"));
            }
            // The server parses the detail itself; only refuse what cannot be a detail at all.
            if c.detail.as_deref().is_some_and(|d| {
                d.is_empty()
                    || !d
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b',' | b'-'))
            }) {
                return Err(bad(
                    "COMPRESSION_DETAIL",
                    "must be a list such as level=1,workers=2",
                ));
            }
        }

        if self.incremental && server_version_num < INCREMENTAL_BACKUP_VERSION_NUM {
            return Err(Error::UnsupportedServerVersion {
                version: server_version_num.to_string(),
                reason: "incremental backups need PostgreSQL 17 or later".to_string(),
            });
        }

        let label = quote_literal(&self.label);
        if server_version_num >= NEW_BASE_BACKUP_SYNTAX_VERSION_NUM {
            let mut opts = vec![format!("LABEL {label}")];
            if self.progress {
                opts.push("PROGRESS".into());
            }
            if self.fast_checkpoint {
                opts.push("CHECKPOINT 'fast'".into());
            }
            if !self.wait_for_wal_archive {
                opts.push("WAIT false".into());
            }
            if self.manifest {
                opts.push("MANIFEST 'yes'".into());
            }
            if let Some(c) = checksums {
                opts.push(format!("MANIFEST_CHECKSUMS {}", quote_literal(c)));
            }
            if self.tablespace_map {
                opts.push("TABLESPACE_MAP".into());
            }
            if let Some(rate) = self.max_rate_kbps {
                opts.push(format!("MAX_RATE {rate}"));
            }
            if !self.verify_checksums {
                opts.push("VERIFY_CHECKSUMS false".into());
            }
            if self.incremental {
                opts.push("INCREMENTAL".into());
            }
            if let Some(c) = &self.server_compression {
                opts.push(format!("COMPRESSION {}", quote_literal(&c.method)));
                if let Some(d) = &c.detail {
                    opts.push(format!("COMPRESSION_DETAIL {}", quote_literal(d)));
                }
            }
            Ok(format!("BASE_BACKUP ( {} )", opts.join(", ")))
        } else {
            let mut cmd = format!("BASE_BACKUP LABEL {label}");
            if self.progress {
                cmd.push_str(" PROGRESS");
            }
            if self.fast_checkpoint {
                cmd.push_str(" FAST");
            }
            if !self.wait_for_wal_archive {
                cmd.push_str(" NOWAIT");
            }
            if self.manifest {
                cmd.push_str(" MANIFEST 'yes'");
            }
            if let Some(c) = checksums {
                cmd.push_str(&format!(" MANIFEST_CHECKSUMS {}", quote_literal(c)));
            }
            if self.tablespace_map {
                cmd.push_str(" TABLESPACE_MAP");
            }
            if let Some(rate) = self.max_rate_kbps {
                cmd.push_str(&format!(" MAX_RATE {rate}"));
            }
            if !self.verify_checksums {
                cmd.push_str(" NOVERIFY_CHECKSUMS");
            }
            Ok(cmd)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BaseBackupOptions {
        BaseBackupOptions {
            label: "pgbak it's 1".into(),
            progress: true,
            fast_checkpoint: true,
            manifest: true,
            manifest_checksums: Some("CRC32C".into()),
            tablespace_map: true,
            max_rate_kbps: Some(1024),
            verify_checksums: false,
            wait_for_wal_archive: false,
            server_compression: None,
            incremental: false,
        }
    }

    #[test]
    fn base_backup_command_pg15() {
        assert_eq!(
            opts().command(150018).unwrap(),
            "BASE_BACKUP ( LABEL 'pgbak it''s 1', PROGRESS, CHECKPOINT 'fast', WAIT false, MANIFEST 'yes', \
             MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP, MAX_RATE 1024, VERIFY_CHECKSUMS false )"
        );
        let minimal = BaseBackupOptions {
            label: "x".into(),
            progress: false,
            fast_checkpoint: false,
            manifest: false,
            manifest_checksums: Some("SHA256".into()),
            tablespace_map: false,
            max_rate_kbps: None,
            verify_checksums: true,
            wait_for_wal_archive: true,
            server_compression: None,
            incremental: false,
        };
        // Checksums without a manifest would be refused by the server: not sent.
        assert_eq!(
            minimal.command(170000).unwrap(),
            "BASE_BACKUP ( LABEL 'x' )"
        );
        assert_eq!(minimal.command(140000).unwrap(), "BASE_BACKUP LABEL 'x'");
    }

    #[test]
    fn base_backup_command_pg13_14() {
        assert_eq!(
            opts().command(140010).unwrap(),
            "BASE_BACKUP LABEL 'pgbak it''s 1' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C' \
             TABLESPACE_MAP MAX_RATE 1024 NOVERIFY_CHECKSUMS"
        );
        assert!(opts()
            .command(130000)
            .unwrap()
            .starts_with("BASE_BACKUP LABEL"));
        assert!(opts()
            .command(149999)
            .unwrap()
            .starts_with("BASE_BACKUP LABEL"));
        assert!(opts()
            .command(150000)
            .unwrap()
            .starts_with("BASE_BACKUP ( LABEL"));
    }

    #[test]
    fn base_backup_command_refusals() {
        let err = opts().command(120015).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedServerVersion { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("PostgreSQL 13"), "{err}");
        let o = BaseBackupOptions {
            label: "a\0b".into(),
            ..opts()
        };
        assert!(o.command(150000).unwrap_err().to_string().contains("NUL"));
        let o = BaseBackupOptions {
            manifest_checksums: Some("CRC32C' , WAIT true".into()),
            ..opts()
        };
        assert!(o
            .command(150000)
            .unwrap_err()
            .to_string()
            .contains("MANIFEST_CHECKSUMS"));
        // Quotes and backslashes in labels are data, not syntax.
        let o = BaseBackupOptions {
            label: r"a\'b''".into(),
            ..opts()
        };
        assert!(o
            .command(150000)
            .unwrap()
            .starts_with(r"BASE_BACKUP ( LABEL 'a\''b''''',"));
    }

    #[test]
    fn base_backup_command_incremental() {
        let o = BaseBackupOptions {
            label: "x".into(),
            incremental: true,
            ..opts()
        };
        assert!(o
            .command(170004)
            .unwrap()
            .ends_with("VERIFY_CHECKSUMS false, INCREMENTAL )"));
        let err = o.command(160004).unwrap_err();
        assert!(err.to_string().contains("PostgreSQL 17"), "{err}");
    }

    #[test]
    fn base_backup_command_server_compression() {
        use crate::replication::ServerCompression;
        let zstd = BaseBackupOptions {
            server_compression: Some(ServerCompression {
                method: "zstd".into(),
                detail: Some("level=1,workers=2".into()),
            }),
            ..opts()
        };
        assert_eq!(
            zstd.command(150018).unwrap(),
            "BASE_BACKUP ( LABEL 'pgbak it''s 1', PROGRESS, CHECKPOINT 'fast', WAIT false, MANIFEST 'yes', \
             MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP, MAX_RATE 1024, VERIFY_CHECKSUMS false, \
             COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=1,workers=2' )"
        );
        let lz4 = BaseBackupOptions {
            label: "x".into(),
            progress: false,
            fast_checkpoint: false,
            manifest: false,
            manifest_checksums: None,
            tablespace_map: false,
            max_rate_kbps: None,
            verify_checksums: true,
            wait_for_wal_archive: true,
            server_compression: Some(ServerCompression {
                method: "lz4".into(),
                detail: None,
            }),
            incremental: false,
        };
        assert_eq!(
            lz4.command(160000).unwrap(),
            "BASE_BACKUP ( LABEL 'x', COMPRESSION 'lz4' )"
        );
        // 13 and 14 cannot compress: refused rather than silently storing uncompressed tars.
        let err = zstd.command(140010).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedServerVersion { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("PostgreSQL 15"), "{err}");
        for (method, detail) in [
            ("bzip2", None),
            ("ZSTD", None),
            ("zstd", Some("")),
            ("zstd", Some("level=1' , WAIT true")),
        ] {
            let o = BaseBackupOptions {
                server_compression: Some(ServerCompression {
                    method: method.into(),
                    detail: detail.map(String::from),
                }),
                ..opts()
            };
            let err = o.command(150000).unwrap_err();
            assert!(
                matches!(err, Error::InvalidOption { .. }),
                "{method} {detail:?}: {err}"
            );
        }
    }

    #[test]
    fn frames() {
        assert_eq!(peek_frame(b"").unwrap(), None);
        assert_eq!(peek_frame(b"Z\0\0\0").unwrap(), None);
        assert_eq!(peek_frame(b"Z\0\0\0\x05").unwrap(), None);
        assert_eq!(peek_frame(b"Z\0\0\0\x05I").unwrap(), Some((b'Z', 6)));
        assert_eq!(peek_frame(b"Z\0\0\0\x05IZ").unwrap(), Some((b'Z', 6)));
        assert_eq!(peek_frame(b"c\0\0\0\x04").unwrap(), Some((b'c', 5)));
        assert!(peek_frame(b"c\0\0\0\x03").is_err());
        assert!(peek_frame(b"d\x7f\xff\xff\xff")
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }

    #[test]
    fn copy_both_response() {
        assert_eq!(
            parse_copy_both_response(&[0, 0, 0]).unwrap(),
            CopyBothResponse {
                format: 0,
                column_formats: vec![]
            }
        );
        assert_eq!(
            parse_copy_both_response(&[1, 0, 2, 0, 1, 0, 0]).unwrap(),
            CopyBothResponse {
                format: 1,
                column_formats: vec![1, 0]
            }
        );
        assert!(parse_copy_both_response(&[]).is_err());
        assert!(parse_copy_both_response(&[0, 0]).is_err());
        assert!(parse_copy_both_response(&[0, 0, 1, 0]).is_err());
        assert!(parse_copy_both_response(&[0, 0, 0, 9]).is_err());
    }

    #[test]
    fn error_fields() {
        let body = b"SFEHLER\0VFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0Dd\0Hh\0Rauth_failed\0\0";
        let e = parse_error_fields(body).unwrap();
        assert_eq!(e.severity, "FATAL");
        assert_eq!(e.code, "28P01");
        assert_eq!(e.message, "password authentication failed for user \"x\"");
        assert_eq!(e.detail.as_deref(), Some("d"));
        assert_eq!(e.hint.as_deref(), Some("h"));
        // Pre-9.6 servers send only the localized severity.
        let e = parse_error_fields(b"SWARNUNG\0Mm\0\0").unwrap();
        assert_eq!(e.severity, "WARNUNG");
        assert_eq!(e.detail, None);
        assert_eq!(parse_error_fields(b"\0").unwrap().severity, "ERROR");
        assert!(parse_error_fields(b"Mno terminator").is_err());
        assert!(parse_error_fields(b"Mm\0").is_err());
        assert!(parse_error_fields(b"").is_err());
    }

    #[test]
    fn base_backup_stream_messages() {
        assert_eq!(
            parse_base_backup_message(b"nbase.tar\0\0").unwrap(),
            BaseBackupMessage::NewArchive {
                name: "base.tar",
                tablespace_location: None
            }
        );
        assert_eq!(
            parse_base_backup_message(b"n16385.tar\0/srv/ts\0").unwrap(),
            BaseBackupMessage::NewArchive {
                name: "16385.tar",
                tablespace_location: Some("/srv/ts")
            }
        );
        assert_eq!(
            parse_base_backup_message(b"dxyz").unwrap(),
            BaseBackupMessage::Data(b"xyz")
        );
        assert_eq!(
            parse_base_backup_message(b"d").unwrap(),
            BaseBackupMessage::Data(b"")
        );
        let mut p = vec![b'p'];
        p.extend_from_slice(&123_456_789i64.to_be_bytes());
        assert_eq!(
            parse_base_backup_message(&p).unwrap(),
            BaseBackupMessage::Progress(123_456_789)
        );
        assert_eq!(
            parse_base_backup_message(b"m").unwrap(),
            BaseBackupMessage::ManifestStart
        );

        let mut neg = vec![b'p'];
        neg.extend_from_slice(&(-1i64).to_be_bytes());
        let bad: [&[u8]; 10] = [
            b"",
            b"x",
            b"p\0\0",
            &neg,
            b"nbase.tar",
            b"nbase.tar\0",
            b"n../../etc/passwd\0\0",
            b"n..\0\0",
            b"n\0\0",
            b"n\xff\0\0",
        ];
        for b in bad {
            assert!(parse_base_backup_message(b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn server_versions() {
        assert_eq!(
            parse_server_version("15.18 (Debian 15.18-0+deb12u1)").unwrap(),
            150018
        );
        assert_eq!(parse_server_version("9.6.3").unwrap(), 90603);
        assert_eq!(parse_server_version("17devel").unwrap(), 170000);
        assert_eq!(parse_server_version("16beta1").unwrap(), 160000);
        assert_eq!(parse_server_version("13.0").unwrap(), 130000);
        assert_eq!(parse_server_version("10.23").unwrap(), 100023);
        assert_eq!(parse_server_version("14.5.1").unwrap(), 140005);
        assert_eq!(parse_server_version("9.4").unwrap(), 90400);
        for bad in ["", "devel", " ", "x15", "99999999"] {
            assert!(parse_server_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn size_settings() {
        assert_eq!(parse_size_setting("16MB"), Some(16 << 20));
        assert_eq!(parse_size_setting("1GB"), Some(1 << 30));
        assert_eq!(parse_size_setting("512kB"), Some(512 << 10));
        assert_eq!(parse_size_setting("8192"), Some(8192));
        assert_eq!(parse_size_setting("8192B"), Some(8192));
        assert_eq!(parse_size_setting(" 2 TB "), Some(2 << 40));
        assert_eq!(parse_size_setting("16mb"), None);
        assert_eq!(parse_size_setting("MB"), None);
        assert_eq!(parse_size_setting("99999999999TB"), None);
    }
}
