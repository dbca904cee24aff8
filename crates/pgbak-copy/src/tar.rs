//! Streaming tar parsing, with no I/O: [`TarHeader::parse`] decodes one 512-byte header block and
//! [`TarStreamParser`] turns a byte stream cut at arbitrary points into entry events for a
//! [`TarVisitor`]. Entry data is handed over as slices of the caller's chunks, never buffered, so
//! memory stays bounded whatever the archive size.
//!
//! Formats: ustar (with its name prefix), GNU (long names and link names in 'L'/'K' entries) and
//! pax (path, linkpath, size, uid, gid and mtime of 'x' headers; 'g' headers are ignored), with
//! octal or base-256 numbers. Every header's checksum is verified, and a stream is complete only
//! once its two zero end blocks arrived.

use crate::{Error, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Size of a tar block.
pub const BLOCK_SIZE: usize = 512;

/// Largest GNU long name or pax extended header accepted. Real ones are a few hundred bytes; the
/// cap keeps a hostile stream from making the parser buffer without bound.
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

/// The header layout a block was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarFormat {
    /// POSIX ustar (`ustar\0` magic): names may be split into prefix and name.
    Ustar,
    /// GNU tar (`ustar  ` magic): long names come in separate 'L'/'K' entries.
    Gnu,
    /// Old Unix tar without magic.
    V7,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file ('0', NUL or the contiguous file '7').
    File,
    /// A hard link to an earlier entry ('1').
    HardLink,
    /// A symbolic link ('2').
    Symlink,
    /// A directory ('5').
    Directory,
    /// Anything else (devices, FIFOs, vendor extensions), with its type flag.
    Other(u8),
}

impl EntryKind {
    /// The kind a header type flag stands for.
    pub fn from_typeflag(typeflag: u8) -> Self {
        match typeflag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'5' => EntryKind::Directory,
            other => EntryKind::Other(other),
        }
    }
}

/// One decoded header block, before GNU or pax extended headers are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarHeader {
    /// The entry name (ustar prefix and name joined with '/').
    pub name: Vec<u8>,
    /// Permission bits and file type bits as stored.
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Size of the data that follows the header, in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The type flag ('0', '5', 'L', 'x', ...).
    pub typeflag: u8,
    /// Target of a link entry.
    pub linkname: Vec<u8>,
    /// The layout the header was written in.
    pub format: TarFormat,
}

impl TarHeader {
    /// Decodes a header block. `Ok(None)` is an all-zero block (the end-of-archive marker); a bad
    /// checksum or an unreadable numeric field is [`Error::CorruptTar`] with offset 0.
    pub fn parse(block: &[u8; BLOCK_SIZE]) -> Result<Option<TarHeader>> {
        parse_header(block).map_err(|reason| Error::CorruptTar { offset: 0, reason })
    }

    /// What the entry is, from its type flag.
    pub fn kind(&self) -> EntryKind {
        EntryKind::from_typeflag(self.typeflag)
    }
}

fn parse_header(block: &[u8; BLOCK_SIZE]) -> std::result::Result<Option<TarHeader>, String> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    verify_checksum(block)?;
    let format = match (&block[257..263], &block[263..265]) {
        (b"ustar\0", _) => TarFormat::Ustar,
        (b"ustar ", b" \0") => TarFormat::Gnu,
        _ => TarFormat::V7,
    };
    let mut name = cstr(&block[0..100]).to_vec();
    if format == TarFormat::Ustar {
        // Only POSIX ustar has a prefix field; GNU stores times at the same offsets.
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut joined = prefix.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(&name);
            name = joined;
        }
    }
    let mode = parse_unsigned(&block[100..108], "mode")?;
    let mode = u32::try_from(mode).map_err(|_| format!("mode {mode} out of range"))?;
    Ok(Some(TarHeader {
        name,
        mode,
        uid: parse_unsigned(&block[108..116], "uid")?,
        gid: parse_unsigned(&block[116..124], "gid")?,
        size: parse_unsigned(&block[124..136], "size")?,
        mtime: parse_signed(&block[136..148], "mtime")?,
        typeflag: block[156],
        linkname: cstr(&block[157..257]).to_vec(),
        format,
    }))
}

/// The bytes of a NUL-terminated (or full-width) string field.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

fn verify_checksum(block: &[u8; BLOCK_SIZE]) -> std::result::Result<(), String> {
    let stored =
        parse_octal(&block[148..156]).ok_or_else(|| "unreadable header checksum".to_string())?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        // The checksum is computed with its own field filled with spaces.
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    // Some historic writers summed signed chars; both sums are accepted, as GNU tar does.
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored}, computed {unsigned})"
        ))
    }
}

/// An octal field: optional leading spaces, digits, then NUL/space padding. `None` if malformed.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < field.len() && field[i] == b' ' {
        i += 1;
    }
    let mut value: u64 = 0;
    while i < field.len() && (b'0'..=b'7').contains(&field[i]) {
        value = value
            .checked_mul(8)?
            .checked_add(u64::from(field[i] - b'0'))?;
        i += 1;
    }
    if field[i..].iter().all(|&b| b == 0 || b == b' ') {
        Some(value)
    } else {
        None
    }
}

/// A base-256 field (first byte has its high bit set): a big-endian two's complement number whose
/// sign is bit 0x40 of the first byte.
fn parse_base256(field: &[u8]) -> Option<i128> {
    let negative = field[0] & 0x40 != 0;
    let mut value = i128::from(field[0] & 0x3f) - if negative { 0x40 } else { 0 };
    for &b in &field[1..] {
        value = value.checked_mul(256)?.checked_add(i128::from(b))?;
    }
    Some(value)
}

fn parse_number(field: &[u8], what: &str) -> std::result::Result<i128, String> {
    if field[0] & 0x80 != 0 {
        parse_base256(field).ok_or_else(|| format!("base-256 {what} field out of range"))
    } else {
        parse_octal(field).map(i128::from).ok_or_else(|| {
            format!(
                "unreadable {what} field {:?}",
                String::from_utf8_lossy(field)
            )
        })
    }
}

fn parse_unsigned(field: &[u8], what: &str) -> std::result::Result<u64, String> {
    let v = parse_number(field, what)?;
    u64::try_from(v).map_err(|_| format!("{what} field out of range ({v})"))
}

fn parse_signed(field: &[u8], what: &str) -> std::result::Result<i64, String> {
    let v = parse_number(field, what)?;
    i64::try_from(v).map_err(|_| format!("{what} field out of range ({v})"))
}

/// One archive member with every extended header applied: what a visitor sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The name as stored (relative in any sane archive; checked by the extractor, not here).
    pub path: PathBuf,
    /// What the entry is.
    pub kind: EntryKind,
    /// Target of a symlink or hard link.
    pub link_target: Option<PathBuf>,
    /// Permission bits as stored (the extractor keeps only the low 9).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Data bytes that follow (always 0 for PostgreSQL's directories and links).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// Receives the events of a [`TarStreamParser`], in order: for each entry `entry_start`, zero or
/// more `entry_data` (whose lengths add up to the entry size), `entry_end`; then `archive_end`
/// once the end blocks arrive. An error stops the parser.
pub trait TarVisitor {
    /// A new entry begins.
    fn entry_start(&mut self, entry: &TarEntry) -> Result<()>;
    /// Data bytes of the current entry.
    fn entry_data(&mut self, data: &[u8]) -> Result<()>;
    /// The current entry's data is complete.
    fn entry_end(&mut self) -> Result<()>;
    /// The end-of-archive blocks arrived.
    fn archive_end(&mut self) -> Result<()>;
}

/// Extended header values waiting for the entry they describe.
#[derive(Debug, Default)]
struct Pending {
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_uid: Option<u64>,
    pax_gid: Option<u64>,
    pax_mtime: Option<i64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.gnu_name.is_none()
            && self.gnu_link.is_none()
            && self.pax_path.is_none()
            && self.pax_link.is_none()
            && self.pax_size.is_none()
            && self.pax_uid.is_none()
            && self.pax_gid.is_none()
            && self.pax_mtime.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaKind {
    GnuName,
    GnuLink,
    Pax,
    PaxGlobal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a header block.
    Header,
    /// Collecting the block after a first zero block, which must be zero too.
    SecondZero,
    /// Passing entry data to the visitor; `pad` bytes of block padding follow.
    Data { remaining: u64, pad: u64 },
    /// Collecting the body of an extended header.
    Meta {
        kind: MetaKind,
        remaining: u64,
        pad: u64,
    },
    /// Skipping block padding.
    Skip { remaining: u64 },
    /// Both end blocks seen; only zero padding (tar records) may follow.
    Ended,
    /// A previous call failed; the stream cannot be resumed.
    Failed,
}

/// Push parser: feed it chunks split anywhere; it calls the visitor as entries are recognised.
#[derive(Debug)]
pub struct TarStreamParser {
    state: State,
    block: [u8; BLOCK_SIZE],
    block_len: usize,
    /// Bytes consumed so far.
    offset: u64,
    meta: Vec<u8>,
    pending: Pending,
}

impl Default for TarStreamParser {
    fn default() -> Self {
        Self::new()
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK_SIZE as u64 - size % BLOCK_SIZE as u64) % BLOCK_SIZE as u64
}

impl TarStreamParser {
    /// A parser at the start of an archive.
    pub fn new() -> Self {
        TarStreamParser {
            state: State::Header,
            block: [0; BLOCK_SIZE],
            block_len: 0,
            offset: 0,
            meta: Vec::new(),
            pending: Pending::default(),
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether both end-of-archive blocks have been seen.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Whether the stream stopped exactly between two entries (no partial header, no data owed,
    /// no extended header waiting), so that appending the end blocks would complete it.
    pub fn at_entry_boundary(&self) -> bool {
        self.state == State::Header && self.block_len == 0 && self.pending.is_empty()
    }

    /// Consumes `data`, calling `visitor` for what it completes.
    pub fn feed<V: TarVisitor + ?Sized>(&mut self, data: &[u8], visitor: &mut V) -> Result<()> {
        if self.state == State::Failed {
            return Err(self.corrupt("the stream already failed"));
        }
        let result = self.feed_inner(data, visitor);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Declares the end of input: an error unless the end-of-archive blocks were seen.
    pub fn finish(&mut self) -> Result<()> {
        let reason = match self.state {
            State::Ended => return Ok(()),
            State::Failed => return Err(self.corrupt("the stream already failed")),
            State::Header if self.block_len > 0 => "inside a header block",
            State::Header if !self.pending.is_empty() => {
                "after an extended header, before its entry"
            }
            State::Header => "before the end-of-archive blocks",
            State::SecondZero => "after a single end-of-archive block",
            State::Data { .. } => "inside entry data",
            State::Meta { .. } => "inside an extended header",
            State::Skip { .. } => "inside block padding",
        };
        self.state = State::Failed;
        Err(Error::TruncatedTar {
            offset: self.offset,
            reason,
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::CorruptTar {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn feed_inner<V: TarVisitor + ?Sized>(
        &mut self,
        mut data: &[u8],
        visitor: &mut V,
    ) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Header | State::SecondZero => {
                    let take = (BLOCK_SIZE - self.block_len).min(data.len());
                    self.block[self.block_len..self.block_len + take]
                        .copy_from_slice(&data[..take]);
                    self.block_len += take;
                    self.offset += take as u64;
                    data = &data[take..];
                    if self.block_len == BLOCK_SIZE {
                        self.block_len = 0;
                        self.on_block(visitor)?;
                    }
                }
                State::Data { remaining, pad } => {
                    let take = remaining.min(data.len() as u64) as usize;
                    visitor.entry_data(&data[..take])?;
                    self.offset += take as u64;
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        visitor.entry_end()?;
                        self.state = if pad > 0 {
                            State::Skip { remaining: pad }
                        } else {
                            State::Header
                        };
                    } else {
                        self.state = State::Data { remaining, pad };
                    }
                }
                State::Meta {
                    kind,
                    remaining,
                    pad,
                } => {
                    let take = remaining.min(data.len() as u64) as usize;
                    self.meta.extend_from_slice(&data[..take]);
                    self.offset += take as u64;
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.apply_meta(kind)?;
                        self.state = if pad > 0 {
                            State::Skip { remaining: pad }
                        } else {
                            State::Header
                        };
                    } else {
                        self.state = State::Meta {
                            kind,
                            remaining,
                            pad,
                        };
                    }
                }
                State::Skip { remaining } => {
                    let take = remaining.min(data.len() as u64);
                    self.offset += take;
                    data = &data[take as usize..];
                    let remaining = remaining - take;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Skip { remaining }
                    };
                }
                State::Ended => {
                    // tar writers pad the archive to a record size with zeros; anything else after
                    // the end marker means the stream is not what it claims to be.
                    if let Some(i) = data.iter().position(|&b| b != 0) {
                        self.offset += i as u64;
                        return Err(self.corrupt("data after the end-of-archive blocks"));
                    }
                    self.offset += data.len() as u64;
                    data = &[];
                }
                State::Failed => return Err(self.corrupt("the stream already failed")),
            }
        }
        Ok(())
    }

    /// Handles a complete block collected in `self.block`.
    fn on_block<V: TarVisitor + ?Sized>(&mut self, visitor: &mut V) -> Result<()> {
        let block_offset = self.offset - BLOCK_SIZE as u64;
        let header = parse_header(&self.block).map_err(|reason| Error::CorruptTar {
            offset: block_offset,
            reason,
        })?;
        if self.state == State::SecondZero {
            if header.is_some() {
                return Err(Error::CorruptTar {
                    offset: block_offset,
                    reason: "a header after an end-of-archive block".into(),
                });
            }
            self.state = State::Ended;
            return visitor.archive_end();
        }
        let Some(header) = header else {
            if !self.pending.is_empty() {
                return Err(Error::CorruptTar {
                    offset: block_offset,
                    reason: "end of archive right after an extended header".into(),
                });
            }
            self.state = State::SecondZero;
            return Ok(());
        };
        let meta_kind = match header.typeflag {
            b'L' => Some(MetaKind::GnuName),
            b'K' => Some(MetaKind::GnuLink),
            b'x' => Some(MetaKind::Pax),
            b'g' => Some(MetaKind::PaxGlobal),
            _ => None,
        };
        if let Some(kind) = meta_kind {
            if header.size > MAX_EXTENDED_HEADER {
                return Err(Error::CorruptTar {
                    offset: block_offset,
                    reason: format!("extended header of {} bytes exceeds the limit", header.size),
                });
            }
            self.meta.clear();
            let pad = padding(header.size);
            if header.size == 0 {
                self.apply_meta(kind)?;
                self.state = State::Header;
            } else {
                self.state = State::Meta {
                    kind,
                    remaining: header.size,
                    pad,
                };
            }
            return Ok(());
        }
        let entry = self.resolve(header, block_offset)?;
        visitor.entry_start(&entry)?;
        if entry.size == 0 {
            visitor.entry_end()?;
            self.state = State::Header;
        } else {
            self.state = State::Data {
                remaining: entry.size,
                pad: padding(entry.size),
            };
        }
        Ok(())
    }

    /// Builds the entry a header describes, applying and clearing pending extended values.
    fn resolve(&mut self, header: TarHeader, block_offset: u64) -> Result<TarEntry> {
        let pending = std::mem::take(&mut self.pending);
        let kind = header.kind();
        let name = pending.pax_path.or(pending.gnu_name).unwrap_or(header.name);
        if name.is_empty() {
            return Err(Error::CorruptTar {
                offset: block_offset,
                reason: "entry with an empty name".into(),
            });
        }
        let link = pending
            .pax_link
            .or(pending.gnu_link)
            .unwrap_or(header.linkname);
        let link_target = match kind {
            EntryKind::HardLink | EntryKind::Symlink => {
                if link.is_empty() {
                    return Err(Error::CorruptTar {
                        offset: block_offset,
                        reason: format!(
                            "link {:?} without a target",
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
                Some(PathBuf::from(OsString::from_vec(link)))
            }
            _ => None,
        };
        Ok(TarEntry {
            path: PathBuf::from(OsString::from_vec(name)),
            kind,
            link_target,
            mode: header.mode,
            uid: pending.pax_uid.unwrap_or(header.uid),
            gid: pending.pax_gid.unwrap_or(header.gid),
            size: pending.pax_size.unwrap_or(header.size),
            mtime: pending.pax_mtime.unwrap_or(header.mtime),
        })
    }

    /// Records what a complete extended header says about the next entry.
    fn apply_meta(&mut self, kind: MetaKind) -> Result<()> {
        let body = std::mem::take(&mut self.meta);
        match kind {
            MetaKind::GnuName => self.pending.gnu_name = Some(cstr(&body).to_vec()),
            MetaKind::GnuLink => self.pending.gnu_link = Some(cstr(&body).to_vec()),
            MetaKind::PaxGlobal => parse_pax(&body).map(drop).map_err(|r| self.corrupt(r))?,
            MetaKind::Pax => {
                for (key, value) in parse_pax(&body).map_err(|r| self.corrupt(r))? {
                    self.apply_pax(key, value)?;
                }
            }
        }
        self.meta = body;
        self.meta.clear();
        Ok(())
    }

    fn apply_pax(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        // An empty value removes the keyword's effect (POSIX), which here means "use the header".
        let offset = self.offset;
        let number = |what: &str| -> Result<Option<u64>> {
            if value.is_empty() {
                return Ok(None);
            }
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(Some)
                .ok_or_else(|| Error::CorruptTar {
                    offset,
                    reason: format!(
                        "pax {what} {:?} is not a number",
                        String::from_utf8_lossy(value)
                    ),
                })
        };
        match key {
            b"path" => self.pending.pax_path = (!value.is_empty()).then(|| value.to_vec()),
            b"linkpath" => self.pending.pax_link = (!value.is_empty()).then(|| value.to_vec()),
            b"size" => self.pending.pax_size = number("size")?,
            b"uid" => self.pending.pax_uid = number("uid")?,
            b"gid" => self.pending.pax_gid = number("gid")?,
            b"mtime" => {
                // Fractional seconds are allowed; whole seconds are all an extractor uses.
                let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
                self.pending.pax_mtime = if whole.is_empty() {
                    None
                } else {
                    let text = String::from_utf8_lossy(whole);
                    Some(text.parse::<i64>().map_err(|_| Error::CorruptTar {
                        offset,
                        reason: format!("pax mtime {text:?} is not a number"),
                    })?)
                };
            }
            _ => {}
        }
        Ok(())
    }
}

/// One pax record: keyword and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits a pax extended header body into its `"<len> <key>=<value>\n"` records.
fn parse_pax(body: &[u8]) -> std::result::Result<Vec<PaxRecord<'_>>, String> {
    let mut records = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // Some writers pad the body with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("pax record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record with an unreadable length")?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("pax record with a wrong length".into());
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("pax record without '='")?;
        records.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(records)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A minimal tar writer for tests: enough to build valid, odd and hostile archives by hand.

    use super::BLOCK_SIZE;

    /// One header block with a correct checksum (ustar unless `gnu`).
    pub fn header(
        name: &[u8],
        typeflag: u8,
        size: u64,
        mode: u32,
        link: &[u8],
    ) -> [u8; BLOCK_SIZE] {
        let mut h = [0u8; BLOCK_SIZE];
        h[..name.len()].copy_from_slice(name);
        put_octal(&mut h[100..108], u64::from(mode));
        put_octal(&mut h[108..116], 1000);
        put_octal(&mut h[116..124], 1000);
        put_octal(&mut h[124..136], size);
        put_octal(&mut h[136..148], 1_700_000_000);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        set_checksum(&mut h);
        h
    }

    pub fn put_octal(field: &mut [u8], value: u64) {
        let s = format!("{:0width$o}\0", value, width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }

    pub fn set_checksum(h: &mut [u8; BLOCK_SIZE]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }

    /// Appends an entry (header, data, padding).
    pub fn entry(
        out: &mut Vec<u8>,
        name: &[u8],
        typeflag: u8,
        mode: u32,
        link: &[u8],
        data: &[u8],
    ) {
        out.extend_from_slice(&header(name, typeflag, data.len() as u64, mode, link));
        append_data(out, data);
    }

    pub fn append_data(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(data);
        let pad = (BLOCK_SIZE - data.len() % BLOCK_SIZE) % BLOCK_SIZE;
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        entry(out, name.as_bytes(), b'0', 0o600, b"", data);
    }

    pub fn dir(out: &mut Vec<u8>, name: &str) {
        entry(out, name.as_bytes(), b'5', 0o700, b"", b"");
    }

    pub fn symlink(out: &mut Vec<u8>, name: &str, target: &str) {
        entry(out, name.as_bytes(), b'2', 0o777, target.as_bytes(), b"");
    }

    pub fn hardlink(out: &mut Vec<u8>, name: &str, target: &str) {
        entry(out, name.as_bytes(), b'1', 0o600, target.as_bytes(), b"");
    }

    /// A pax 'x' header carrying `records` (key, value).
    pub fn pax(out: &mut Vec<u8>, records: &[(&str, &str)]) {
        let mut body = Vec::new();
        for (k, v) in records {
            // The length counts its own digits.
            let base = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = base + 1;
            while base + len.to_string().len() != len {
                len = base + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}={v}\n").as_bytes());
        }
        entry(out, b"PaxHeaders/x", b'x', 0o644, b"", &body);
    }

    pub fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(&[0u8; 2 * BLOCK_SIZE]);
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    /// Records every event as text, and concatenates data per entry.
    #[derive(Default, Debug, PartialEq, Eq, Clone)]
    struct Recorder {
        events: Vec<String>,
        entries: Vec<(TarEntry, Vec<u8>)>,
        ended: bool,
    }

    impl TarVisitor for Recorder {
        fn entry_start(&mut self, entry: &TarEntry) -> Result<()> {
            self.events.push(format!("start {}", entry.path.display()));
            self.entries.push((entry.clone(), Vec::new()));
            Ok(())
        }
        fn entry_data(&mut self, data: &[u8]) -> Result<()> {
            assert!(!data.is_empty() || self.entries.last().is_some());
            self.entries
                .last_mut()
                .expect("data inside an entry")
                .1
                .extend_from_slice(data);
            Ok(())
        }
        fn entry_end(&mut self) -> Result<()> {
            self.events.push("end".into());
            Ok(())
        }
        fn archive_end(&mut self) -> Result<()> {
            self.ended = true;
            Ok(())
        }
    }

    fn parse_all(bytes: &[u8], chunk: usize) -> Result<Recorder> {
        let mut p = TarStreamParser::new();
        let mut r = Recorder::default();
        for c in bytes.chunks(chunk.max(1)) {
            p.feed(c, &mut r)?;
        }
        p.finish()?;
        Ok(r)
    }

    fn sample() -> Vec<u8> {
        let mut t = Vec::new();
        dir(&mut t, "base/");
        file(&mut t, "base/1/PG_VERSION", b"15\n");
        file(&mut t, "empty", b"");
        file(&mut t, "big", &vec![7u8; 1500]);
        symlink(&mut t, "pg_tblspc/16384", "/srv/ts");
        hardlink(&mut t, "big2", "big");
        end(&mut t);
        t
    }

    #[test]
    fn parses_a_simple_archive() {
        let r = parse_all(&sample(), 1 << 20).unwrap();
        assert!(r.ended);
        let names: Vec<_> = r
            .entries
            .iter()
            .map(|(e, _)| e.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "base/",
                "base/1/PG_VERSION",
                "empty",
                "big",
                "pg_tblspc/16384",
                "big2"
            ]
        );
        assert_eq!(r.entries[0].0.kind, EntryKind::Directory);
        assert_eq!(r.entries[0].0.mode, 0o700);
        assert_eq!(r.entries[1].1, b"15\n");
        assert_eq!(r.entries[1].0.mtime, 1_700_000_000);
        assert_eq!(r.entries[3].1, vec![7u8; 1500]);
        assert_eq!(r.entries[4].0.kind, EntryKind::Symlink);
        assert_eq!(
            r.entries[4].0.link_target.as_deref(),
            Some(std::path::Path::new("/srv/ts"))
        );
        assert_eq!(r.entries[5].0.kind, EntryKind::HardLink);
        assert_eq!(r.events.iter().filter(|e| *e == "end").count(), 6);
    }

    #[test]
    fn byte_by_byte_equals_one_chunk() {
        let t = sample();
        assert_eq!(parse_all(&t, 1).unwrap(), parse_all(&t, t.len()).unwrap());
    }

    #[test]
    fn zero_block_is_end_marker() {
        assert_eq!(TarHeader::parse(&[0u8; BLOCK_SIZE]).unwrap(), None);
    }

    #[test]
    fn bad_checksum_is_refused() {
        let mut h = header(b"f", b'0', 0, 0o600, b"");
        h[0] = b'g';
        let err = TarHeader::parse(&h).unwrap_err();
        assert!(
            matches!(err, Error::CorruptTar { ref reason, .. } if reason.contains("checksum")),
            "{err}"
        );

        let mut t = Vec::new();
        file(&mut t, "a", b"x");
        let mut bad = header(b"b", b'0', 0, 0o600, b"");
        bad[100] = b'9';
        t.extend_from_slice(&bad);
        end(&mut t);
        match parse_all(&t, 100) {
            Err(Error::CorruptTar { offset, .. }) => assert_eq!(offset, 1024),
            other => panic!("expected corrupt tar, got {other:?}"),
        }
    }

    #[test]
    fn signed_checksum_is_accepted() {
        let mut h = header(b"f\xe9", b'0', 0, 0o600, b"");
        let signed: i64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        h[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert_eq!(TarHeader::parse(&h).unwrap().unwrap().name, b"f\xe9");
    }

    #[test]
    fn ustar_prefix_is_joined() {
        let mut h = header(b"file", b'0', 0, 0o600, b"");
        h[345..352].copy_from_slice(b"a/b/c/d");
        set_checksum(&mut h);
        let parsed = TarHeader::parse(&h).unwrap().unwrap();
        assert_eq!(parsed.name, b"a/b/c/d/file");
        assert_eq!(parsed.format, TarFormat::Ustar);
    }

    #[test]
    fn gnu_header_ignores_prefix_area() {
        let mut h = header(b"file", b'0', 0, 0o600, b"");
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
        h[345..349].copy_from_slice(b"1234");
        set_checksum(&mut h);
        let parsed = TarHeader::parse(&h).unwrap().unwrap();
        assert_eq!(parsed.name, b"file");
        assert_eq!(parsed.format, TarFormat::Gnu);
    }

    #[test]
    fn base256_numbers() {
        let mut h = header(b"huge", b'0', 0, 0o600, b"");
        // 10 GiB, as PostgreSQL writes sizes of 8 GiB and more.
        let size: u64 = 10 << 30;
        h[124] = 0x80;
        h[125..128].fill(0);
        h[128..136].copy_from_slice(&size.to_be_bytes());
        // mtime -1 (0xff...ff).
        h[136..148].fill(0xff);
        set_checksum(&mut h);
        let parsed = TarHeader::parse(&h).unwrap().unwrap();
        assert_eq!(parsed.size, size);
        assert_eq!(parsed.mtime, -1);

        // A negative size is refused.
        h[124..136].fill(0xff);
        set_checksum(&mut h);
        assert!(TarHeader::parse(&h).is_err());
    }

    #[test]
    fn octal_with_spaces_and_garbage() {
        assert_eq!(parse_octal(b"  644 \0\0"), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"0000008\0"), None);
        assert_eq!(parse_octal(b"12x4\0"), None);
        let mut h = header(b"f", b'0', 0, 0o600, b"");
        h[108..116].copy_from_slice(b"12a4567\0");
        set_checksum(&mut h);
        assert!(TarHeader::parse(&h).is_err());
    }

    #[test]
    fn gnu_long_name_and_link() {
        let long_name = format!("{}/file", "d".repeat(300));
        let long_link = format!("/{}", "t".repeat(200));
        let mut t = Vec::new();
        let mut body = long_name.clone().into_bytes();
        body.push(0);
        entry(&mut t, b"././@LongLink", b'L', 0, b"", &body);
        file(&mut t, "truncated-name", b"abc");
        let mut body = long_link.clone().into_bytes();
        body.push(0);
        entry(&mut t, b"././@LongLink", b'K', 0, b"", &body);
        entry(&mut t, b"././@LongLink", b'L', 0, b"", b"link\0");
        symlink(&mut t, "x", "short");
        end(&mut t);
        let r = parse_all(&t, 7).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].0.path, PathBuf::from(&long_name));
        assert_eq!(r.entries[0].1, b"abc");
        assert_eq!(r.entries[1].0.path, PathBuf::from("link"));
        assert_eq!(r.entries[1].0.link_target, Some(PathBuf::from(&long_link)));
    }

    #[test]
    fn pax_overrides_and_global_is_ignored() {
        let long = "p".repeat(250);
        let mut t = Vec::new();
        pax(&mut t, &[("path", "ignored-global")]);
        // Turn that first header into a global one.
        t[156] = b'g';
        let mut first = [0u8; BLOCK_SIZE];
        first.copy_from_slice(&t[..BLOCK_SIZE]);
        set_checksum(&mut first);
        t[..BLOCK_SIZE].copy_from_slice(&first);
        pax(
            &mut t,
            &[
                ("path", &long),
                ("mtime", "1234.5"),
                ("uid", "70000000000"),
                ("comment", "x=y"),
            ],
        );
        file(&mut t, "short", b"data");
        pax(&mut t, &[("linkpath", "/tmp/target")]);
        symlink(&mut t, "l", "ignored");
        pax(&mut t, &[("size", "5")]);
        // Header says 0 bytes; pax says 5.
        t.extend_from_slice(&header(b"sized", b'0', 0, 0o600, b""));
        append_data(&mut t, b"hello");
        file(&mut t, "after", b"");
        end(&mut t);
        let r = parse_all(&t, 13).unwrap();
        let e: Vec<_> = r
            .entries
            .iter()
            .map(|(e, d)| (e.path.to_string_lossy().into_owned(), d.clone()))
            .collect();
        assert_eq!(e[0], (long.clone(), b"data".to_vec()));
        assert_eq!(r.entries[0].0.mtime, 1234);
        assert_eq!(r.entries[0].0.uid, 70_000_000_000);
        assert_eq!(
            r.entries[1].0.link_target,
            Some(PathBuf::from("/tmp/target"))
        );
        assert_eq!(e[2], ("sized".to_string(), b"hello".to_vec()));
        assert_eq!(e[3].0, "after");
        // Extended values apply to one entry only.
        assert_eq!(r.entries[3].0.mtime, 1_700_000_000);
    }

    #[test]
    fn bad_pax_records_are_refused() {
        for body in [
            &b"5 a=b\n"[..],
            b"x path=a\n",
            b"11 path=a\n",
            b"10 path=a\nxx",
            b"9 patha\n\n",
        ] {
            let mut t = Vec::new();
            entry(&mut t, b"PaxHeaders/x", b'x', 0o644, b"", body);
            file(&mut t, "f", b"");
            end(&mut t);
            assert!(
                matches!(parse_all(&t, 512), Err(Error::CorruptTar { .. })),
                "{body:?}"
            );
        }
        assert_eq!(
            parse_pax(b"9 path=a\n").unwrap(),
            vec![(&b"path"[..], &b"a"[..])]
        );
    }

    #[test]
    fn oversized_extended_header_is_refused() {
        let mut t = Vec::new();
        t.extend_from_slice(&header(
            b"././@LongLink",
            b'L',
            MAX_EXTENDED_HEADER + 1,
            0,
            b"",
        ));
        let mut p = TarStreamParser::new();
        let mut r = Recorder::default();
        assert!(matches!(p.feed(&t, &mut r), Err(Error::CorruptTar { .. })));
        // The parser stays failed.
        assert!(p.feed(&[0u8; 10], &mut r).is_err());
        assert!(p.finish().is_err());
    }

    #[test]
    fn truncated_streams_are_errors_at_finish() {
        let t = sample();
        // Cut everywhere that is not the complete archive: every cut must fail at finish, never earlier.
        let mut cuts: Vec<usize> = (0..t.len()).step_by(97).collect();
        cuts.extend([511, 512, 513, t.len() - 1024, t.len() - 512, t.len() - 1]);
        for cut in cuts {
            let mut p = TarStreamParser::new();
            let mut r = Recorder::default();
            p.feed(&t[..cut], &mut r).unwrap();
            assert!(
                matches!(p.finish(), Err(Error::TruncatedTar { .. })),
                "cut at {cut}"
            );
            assert!(!r.ended);
        }
    }

    #[test]
    fn boundary_and_end_queries() {
        let mut t = Vec::new();
        file(&mut t, "a", b"xyz");
        let mut p = TarStreamParser::new();
        let mut r = Recorder::default();
        assert!(p.at_entry_boundary());
        p.feed(&t[..600], &mut r).unwrap();
        assert!(!p.at_entry_boundary());
        p.feed(&t[600..], &mut r).unwrap();
        assert!(p.at_entry_boundary());
        assert!(!p.is_ended());
        p.feed(&[0u8; 1024], &mut r).unwrap();
        assert!(p.is_ended());
        assert!(r.ended);
        // Record padding after the end is fine, other bytes are not.
        p.feed(&[0u8; 9216], &mut r).unwrap();
        p.finish().unwrap();
        assert!(p.feed(b"\0\0x", &mut r).is_err());
    }

    #[test]
    fn header_after_single_zero_block_is_refused() {
        let mut t = Vec::new();
        file(&mut t, "a", b"1");
        t.extend_from_slice(&[0u8; BLOCK_SIZE]);
        file(&mut t, "b", b"2");
        end(&mut t);
        assert!(matches!(parse_all(&t, 4096), Err(Error::CorruptTar { .. })));
    }

    #[test]
    fn link_without_target_and_empty_name_are_refused() {
        let mut t = Vec::new();
        symlink(&mut t, "l", "");
        end(&mut t);
        assert!(parse_all(&t, 512).is_err());
        let mut t = Vec::new();
        entry(&mut t, b"././@LongLink", b'L', 0, b"", b"\0");
        file(&mut t, "x", b"");
        end(&mut t);
        assert!(parse_all(&t, 512).is_err());
    }

    #[test]
    fn visitor_errors_stop_the_parser() {
        struct Refuse;
        impl TarVisitor for Refuse {
            fn entry_start(&mut self, _: &TarEntry) -> Result<()> {
                Err(Error::Server("no".into()))
            }
            fn entry_data(&mut self, _: &[u8]) -> Result<()> {
                Ok(())
            }
            fn entry_end(&mut self) -> Result<()> {
                Ok(())
            }
            fn archive_end(&mut self) -> Result<()> {
                Ok(())
            }
        }
        let t = sample();
        let mut p = TarStreamParser::new();
        assert!(matches!(p.feed(&t, &mut Refuse), Err(Error::Server(_))));
        assert!(p.feed(&[], &mut Refuse).is_err());
    }

    #[test]
    fn gnu_tar_archives_parse() {
        // Archives written by the system's GNU tar, in its three formats, with long names.
        let Ok(status) = std::process::Command::new("tar").arg("--version").output() else {
            return;
        };
        if !status.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let long_dir = src.join("d".repeat(120)).join("e".repeat(120));
        std::fs::create_dir_all(&long_dir).unwrap();
        std::fs::write(long_dir.join("f".repeat(150)), b"long").unwrap();
        std::fs::write(src.join("small"), vec![1u8; 70_000]).unwrap();
        std::os::unix::fs::symlink("/".to_string() + &"l".repeat(150), src.join("link")).unwrap();
        for format in ["gnu", "pax", "ustar"] {
            let out = dir.path().join(format!("{format}.tar"));
            let ok = std::process::Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-cf")
                .arg(&out)
                .arg("-C")
                .arg(&src)
                .arg(".")
                .output()
                .unwrap();
            if format == "ustar" {
                // ustar cannot hold these names: GNU tar refuses some members.
                continue;
            }
            assert!(
                ok.status.success(),
                "{format}: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            let bytes = std::fs::read(&out).unwrap();
            let r = parse_all(&bytes, 1000).unwrap();
            let find = |suffix: &str| {
                r.entries
                    .iter()
                    .find(|(e, _)| e.path.to_string_lossy().ends_with(suffix))
                    .cloned()
            };
            let (f, data) =
                find(&"f".repeat(150)).unwrap_or_else(|| panic!("{format}: long file missing"));
            assert_eq!(data, b"long");
            assert_eq!(f.kind, EntryKind::File);
            assert_eq!(find("small").unwrap().1.len(), 70_000);
            let (l, _) = find("link").unwrap();
            assert_eq!(l.link_target.unwrap().to_string_lossy().len(), 151);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_split_gives_the_same_events(
            sizes in proptest::collection::vec(0usize..1300, 1..6),
            cuts in proptest::collection::vec(0usize..20_000, 0..12),
        ) {
            let mut t = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let data: Vec<u8> = (0..*size).map(|b| (b * 31 + i) as u8).collect();
                if i % 2 == 0 {
                    pax(&mut t, &[("path", &format!("{}/{i}", "x".repeat(150)))]);
                }
                file(&mut t, &format!("f{i}"), &data);
            }
            end(&mut t);
            let whole = parse_all(&t, t.len()).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (t.len() + 1)).collect();
            cuts.sort_unstable();
            let mut p = TarStreamParser::new();
            let mut r = Recorder::default();
            let mut start = 0;
            for cut in cuts.into_iter().chain([t.len()]) {
                p.feed(&t[start..cut], &mut r).unwrap();
                start = cut;
            }
            p.finish().unwrap();
            prop_assert_eq!(r, whole);
        }
    }
}
