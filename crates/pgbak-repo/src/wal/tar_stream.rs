//! The small tar streams the WAL helpers exchange over SSH (`wal-archive` -> `put-wal`, and
//! `get-wal --bundle` -> `wal-restore`): ustar entries of regular files named by a bare WAL
//! name, plus the checksum files of Barman's protocol (`SHA256SUMS`, `MD5SUMS`) and pgbak's
//! cheaper `CRC32CSUMS`. Reading uses `pgbak-copy`'s tar parser; writing needs only this much.

use std::io::{self, Write};

const BLOCK: usize = 512;

/// Writes the header of a regular file entry of `size` bytes named `name` (at most 100 bytes).
pub fn write_header(w: &mut dyn Write, name: &str, size: u64, mtime: u64) -> io::Result<()> {
    if name.len() > 100 || name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry name {name:?} must be 1 to 100 bytes"),
        ));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o600);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    w.write_all(&h)
}

/// Writes the zero padding that follows `size` bytes of entry data.
pub fn write_padding(w: &mut dyn Write, size: u64) -> io::Result<()> {
    let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    w.write_all(&[0u8; BLOCK][..pad as usize])
}

/// Writes a whole entry held in memory.
pub fn write_entry(w: &mut dyn Write, name: &str, data: &[u8], mtime: u64) -> io::Result<()> {
    write_header(w, name, data.len() as u64, mtime)?;
    w.write_all(data)?;
    write_padding(w, data.len() as u64)
}

/// Writes the two zero blocks that end an archive.
pub fn write_end(w: &mut dyn Write) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    // Values that do not fit are never produced here: sizes are below 8 GiB (11 octal digits).
    let s = &s[s.len().saturating_sub(width)..];
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

/// The checksum algorithms a sums file may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumKind {
    /// `CRC32CSUMS`: CRC-32C, 8 hex digits (pgbak's default: hardware-fast).
    Crc32c,
    /// `MD5SUMS` (Barman's `--md5`).
    Md5,
    /// `SHA256SUMS` (Barman's default).
    Sha256,
}

impl SumKind {
    /// The name of the sums file in the tar stream.
    pub fn file_name(self) -> &'static str {
        match self {
            SumKind::Crc32c => "CRC32CSUMS",
            SumKind::Md5 => "MD5SUMS",
            SumKind::Sha256 => "SHA256SUMS",
        }
    }

    /// The algorithm of a sums file name, if it is one.
    pub fn from_file_name(name: &str) -> Option<SumKind> {
        [SumKind::Crc32c, SumKind::Md5, SumKind::Sha256]
            .into_iter()
            .find(|k| k.file_name() == name)
    }
}

/// An incremental checksum of one of the [`SumKind`]s.
pub enum Summer {
    /// CRC-32C state.
    Crc32c(u32),
    /// MD5 state.
    Md5(md5::Md5),
    /// SHA-256 state.
    Sha256(sha2::Sha256),
}

impl Summer {
    /// A fresh checksum of `kind`.
    pub fn new(kind: SumKind) -> Summer {
        use sha2::Digest;
        match kind {
            SumKind::Crc32c => Summer::Crc32c(0),
            SumKind::Md5 => Summer::Md5(md5::Md5::new()),
            SumKind::Sha256 => Summer::Sha256(sha2::Sha256::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Summer::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Summer::Md5(m) => m.update(data),
            Summer::Sha256(s) => s.update(data),
        }
    }

    /// The lower-case hex digest.
    pub fn hex(self) -> String {
        use sha2::Digest;
        match self {
            Summer::Crc32c(c) => format!("{c:08x}"),
            Summer::Md5(m) => hex(&m.finalize()),
            Summer::Sha256(s) => hex(&s.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of a sums file, as `sha256sum` writes it in binary mode and Barman reads it.
pub fn sums_line(digest: &str, name: &str) -> String {
    format!("{digest} *{name}\n")
}

/// Parses a sums file: `digest  name` or `digest *name` per line. Returns (name, digest) pairs.
pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (digest, rest) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: expected 'DIGEST NAME'", i + 1))?;
        let name = rest
            .trim_start_matches(' ')
            .trim_start_matches('*')
            .trim_end();
        if digest.is_empty() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
            return Err(format!(
                "line {}: expected 'DIGEST NAME', got {line:?}",
                i + 1
            ));
        }
        out.push((name.to_string(), digest.to_ascii_lowercase()));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The entries of a ustar stream as written here (names up to 100 bytes, no extensions):
    /// enough to read back what this module writes, independently of the parsers of pgbak-copy.
    pub(crate) fn read_back(bytes: &[u8]) -> (Vec<(String, Vec<u8>)>, bool) {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 512 <= bytes.len() {
            let h = &bytes[at..at + 512];
            if h.iter().all(|b| *b == 0) {
                return (out, true);
            }
            let name_len = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
            let name = String::from_utf8(h[..name_len].to_vec()).unwrap();
            let size_text = std::str::from_utf8(&h[124..135]).unwrap();
            let size = usize::from_str_radix(size_text.trim_matches(char::from(0)), 8).unwrap();
            at += 512;
            out.push((name, bytes[at..at + size].to_vec()));
            at += size.div_ceil(512) * 512;
        }
        (out, false)
    }

    #[test]
    fn written_streams_parse_back() {
        let mut out = Vec::new();
        write_entry(&mut out, "000000010000000000000001", &[7u8; 1000], 1).unwrap();
        write_entry(&mut out, "SHA256SUMS", b"ab *x\n", 1).unwrap();
        write_entry(&mut out, "empty", b"", 1).unwrap();
        write_end(&mut out).unwrap();
        let c = read_back(&out);
        assert!(c.1);
        assert_eq!(c.0.len(), 3);
        assert_eq!(c.0[0].1, vec![7u8; 1000]);
        assert_eq!(c.0[1].0, "SHA256SUMS");
        assert!(write_header(&mut Vec::new(), &"x".repeat(101), 0, 0).is_err());
    }

    #[test]
    fn digests_match_known_values() {
        let mut m = Summer::new(SumKind::Md5);
        m.update(b"abc");
        assert_eq!(m.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut s = Summer::new(SumKind::Sha256);
        s.update(b"abc");
        assert_eq!(
            s.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut c = Summer::new(SumKind::Crc32c);
        c.update(b"123456789");
        assert_eq!(c.hex(), "e3069283");
    }

    #[test]
    fn sums_files_parse_both_styles() {
        let v = parse_sums("AB12 *000000010000000000000001\ncd34  00000002.history\n\n").unwrap();
        assert_eq!(
            v,
            vec![
                ("000000010000000000000001".to_string(), "ab12".to_string()),
                ("00000002.history".to_string(), "cd34".to_string())
            ]
        );
        assert!(parse_sums("nospace\n").is_err());
        assert!(parse_sums("zz *x\n").is_err());
        assert_eq!(SumKind::from_file_name("MD5SUMS"), Some(SumKind::Md5));
        assert_eq!(SumKind::from_file_name("md5sums"), None);
    }
}
