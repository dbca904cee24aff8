//! Reading a sequence of LZ4 frames with exact boundaries.
//!
//! The `lz4` crate's decoder has two gaps: it returns a clean end of data when its input runs out
//! in the middle of a frame, and it may read past the end of a frame into whatever follows, so a
//! second frame (the `lz4` tool writes one per file it is given) or trailing bytes cannot be found.
//! [`FrameLimit`] walks the frame structure (header, block sizes, checksums: see the LZ4 Frame
//! Format Description) as the bytes pass, so that the decoder sees exactly one frame, truncation
//! is an error, and what follows a frame is read as another frame, skipped (skippable frames), or
//! refused.

use std::io::{self, BufRead, Read};

use crate::decode::read_up_to;

/// Magic number of an LZ4 frame.
const FRAME_MAGIC: u32 = 0x184D_2204;

/// Whether `magic` opens a skippable frame (0x184D2A50 to 0x184D2A5F).
fn is_skippable(magic: u32) -> bool {
    magic & 0xFFFF_FFF0 == 0x184D_2A50
}

/// Decompresses every LZ4 frame of `R` in turn.
pub(crate) struct Lz4Frames<R: BufRead> {
    state: State<R>,
}

enum State<R: BufRead> {
    /// Between frames: the next read looks for another one.
    Between(FrameLimit<R>),
    InFrame(lz4::Decoder<FrameLimit<R>>),
    /// The input ended cleanly after a frame, or an error was returned.
    Done,
}

impl<R: BufRead> Lz4Frames<R> {
    pub(crate) fn new(source: R) -> Self {
        Lz4Frames {
            state: State::Between(FrameLimit::new(source)),
        }
    }
}

impl<R: BufRead> Read for Lz4Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(0),
                State::Between(mut limit) => {
                    let first = limit.frames == 0;
                    if limit.next_frame(first)? {
                        self.state = State::InFrame(lz4::Decoder::new(limit)?);
                    }
                }
                State::InFrame(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.state = State::InFrame(decoder);
                        return Ok(n);
                    }
                    let (limit, complete) = decoder.finish();
                    // The limit hands out no byte past the frame's content checksum, so a decoder
                    // still waiting for data has met a frame that disagrees with its own header.
                    if complete.is_err() || !limit.at_frame_end() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "lz4 frame is inconsistent",
                        ));
                    }
                    self.state = State::Between(limit);
                }
            }
        }
    }
}

/// Which part of a frame the next bytes belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Magic, FLG and BD bytes, kept to learn the frame's options.
    Descriptor,
    /// Optional content size and dictionary id, then the header checksum.
    DescriptorRest,
    /// A block's 4-byte size, kept; zero is the end mark.
    BlockSize,
    /// A block's data and optional checksum.
    Block,
    /// The optional content checksum after the end mark.
    ContentChecksum,
    /// Past the end of the frame.
    End,
}

/// A reader that yields the bytes of one LZ4 frame and then stops, and fails if the input ends
/// inside the frame.
pub(crate) struct FrameLimit<R> {
    inner: R,
    part: Part,
    /// Bytes of `part` not yet handed out.
    left: usize,
    /// The bytes of `part` seen so far, when `part` is one this reader needs to read itself.
    kept: [u8; 6],
    kept_len: usize,
    /// The frame magic, already read while looking for the frame, to hand out before the rest.
    magic: [u8; 4],
    magic_sent: usize,
    block_checksums: bool,
    content_checksum: bool,
    /// Frames begun so far.
    frames: u64,
}

impl<R: BufRead> FrameLimit<R> {
    fn new(inner: R) -> Self {
        FrameLimit {
            inner,
            part: Part::End,
            left: 0,
            kept: [0; 6],
            kept_len: 0,
            magic: [0; 4],
            magic_sent: 4,
            block_checksums: false,
            content_checksum: false,
            frames: 0,
        }
    }

    fn at_frame_end(&self) -> bool {
        self.part == Part::End
    }

    /// Moves to the next LZ4 frame, skipping skippable frames. Returns `false` when the input ends
    /// cleanly here; anything else that is not a frame is an error.
    fn next_frame(&mut self, first: bool) -> io::Result<bool> {
        loop {
            let mut head = [0u8; 4];
            let got = read_up_to(&mut self.inner, &mut head)?;
            if got == 0 && !first {
                return Ok(false);
            }
            let magic = u32::from_le_bytes(head);
            if got < head.len() || (magic != FRAME_MAGIC && !is_skippable(magic)) {
                let what = if first {
                    "not an lz4 frame"
                } else {
                    "unexpected bytes after the last lz4 frame"
                };
                return Err(io::Error::new(io::ErrorKind::InvalidData, what));
            }
            if is_skippable(magic) {
                self.skip_frame()?;
                continue;
            }
            self.frames += 1;
            self.magic = head;
            self.magic_sent = 0;
            self.part = Part::Descriptor;
            self.left = 6;
            self.kept_len = 0;
            return Ok(true);
        }
    }

    /// Skips the body of a skippable frame whose magic was just read.
    fn skip_frame(&mut self) -> io::Result<()> {
        let mut size = [0u8; 4];
        if read_up_to(&mut self.inner, &mut size)? < size.len() {
            return Err(truncated());
        }
        let size = u64::from(u32::from_le_bytes(size));
        let skipped = io::copy(&mut (&mut self.inner).take(size), &mut io::sink())?;
        if skipped < size {
            return Err(truncated());
        }
        Ok(())
    }

    /// Called when `part` has been handed out in full: decides what comes next.
    fn advance(&mut self) -> io::Result<()> {
        match self.part {
            Part::Descriptor => {
                let flg = self.kept[4];
                if flg >> 6 != 0b01 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unsupported lz4 frame version",
                    ));
                }
                self.block_checksums = flg & 0x10 != 0;
                self.content_checksum = flg & 0x04 != 0;
                let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
                let dict_id = if flg & 0x01 != 0 { 4 } else { 0 };
                self.enter(Part::DescriptorRest, content_size + dict_id + 1);
            }
            Part::DescriptorRest | Part::Block => self.enter(Part::BlockSize, 4),
            Part::BlockSize => {
                let size =
                    u32::from_le_bytes([self.kept[0], self.kept[1], self.kept[2], self.kept[3]]);
                if size == 0 {
                    if self.content_checksum {
                        self.enter(Part::ContentChecksum, 4);
                    } else {
                        self.enter(Part::End, 0);
                    }
                } else {
                    // The high bit only marks an uncompressed block.
                    let data = (size & 0x7FFF_FFFF) as usize;
                    let checksum = if self.block_checksums { 4 } else { 0 };
                    self.enter(Part::Block, data + checksum);
                }
            }
            Part::ContentChecksum => self.enter(Part::End, 0),
            Part::End => {}
        }
        Ok(())
    }

    fn enter(&mut self, part: Part, len: usize) {
        self.part = part;
        self.left = len;
        self.kept_len = 0;
    }

    fn keeps(part: Part) -> bool {
        matches!(part, Part::Descriptor | Part::BlockSize)
    }
}

impl<R: BufRead> Read for FrameLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.part == Part::End || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.left);
        let n = if self.magic_sent < self.magic.len() {
            let n = want.min(self.magic.len() - self.magic_sent);
            buf[..n].copy_from_slice(&self.magic[self.magic_sent..self.magic_sent + n]);
            self.magic_sent += n;
            n
        } else {
            match self.inner.read(&mut buf[..want])? {
                0 => return Err(truncated()),
                n => n,
            }
        };
        if Self::keeps(self.part) {
            self.kept[self.kept_len..self.kept_len + n].copy_from_slice(&buf[..n]);
            self.kept_len += n;
        }
        self.left -= n;
        // Decided now rather than at the next read, so that the end of the frame is known as soon
        // as its last byte has been handed out.
        while self.left == 0 && self.part != Part::End {
            self.advance()?;
        }
        Ok(n)
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "lz4 frame ends before its end mark",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Sets options of a frame, given the length of its content.
    type Configure = fn(&mut lz4::EncoderBuilder, u64);

    fn frame(data: &[u8], configure: Configure) -> Vec<u8> {
        let mut builder = lz4::EncoderBuilder::new();
        configure(&mut builder, data.len() as u64);
        let mut enc = builder.build(Vec::new()).unwrap();
        enc.write_all(data).unwrap();
        let (out, result) = enc.finish();
        result.unwrap();
        out
    }

    fn read_all(stored: &[u8]) -> io::Result<Vec<u8>> {
        let mut back = Vec::new();
        Lz4Frames::new(stored).read_to_end(&mut back)?;
        Ok(back)
    }

    fn data() -> Vec<u8> {
        (0..300_000u32).map(|i| (i / 7 % 251) as u8).collect()
    }

    #[test]
    fn every_frame_option_is_walked_correctly() {
        let data = data();
        let variants: [Configure; 4] = [
            |_, _| {},
            |b, _| {
                b.block_checksum(lz4::liblz4::BlockChecksum::BlockChecksumEnabled);
            },
            |b, _| {
                b.checksum(lz4::ContentChecksum::NoChecksum)
                    .block_size(lz4::BlockSize::Max64KB);
            },
            |b, len| {
                b.content_size(len)
                    .block_mode(lz4::BlockMode::Independent)
                    .level(9);
            },
        ];
        for (i, configure) in variants.into_iter().enumerate() {
            let mut stored = frame(&data, configure);
            stored.extend(frame(b"tail", configure));
            let mut expected = data.clone();
            expected.extend_from_slice(b"tail");
            assert_eq!(read_all(&stored).unwrap(), expected, "variant {i}");
        }
    }

    #[test]
    fn frames_end_exactly_even_when_read_one_byte_at_a_time() {
        let mut stored = frame(b"one", |_, _| {});
        stored.extend(frame(b"two", |_, _| {}));
        let mut limit = FrameLimit::new(&stored[..]);
        assert!(limit.next_frame(true).unwrap());
        let mut first = Vec::new();
        let mut byte = [0u8; 1];
        while limit.read(&mut byte).unwrap() == 1 {
            first.push(byte[0]);
        }
        assert_eq!(first, frame(b"one", |_, _| {}));
        assert!(limit.at_frame_end());
        assert!(limit.next_frame(false).unwrap());
        assert!(!{
            let mut rest = Vec::new();
            limit.read_to_end(&mut rest).unwrap();
            limit.next_frame(false).unwrap()
        });
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let stored = frame(&data(), |_, _| {});
        for cut in [
            1,
            4,
            7,
            11,
            stored.len() / 2,
            stored.len() - 4,
            stored.len() - 1,
        ] {
            let err = read_all(&stored[..cut]).expect_err(&format!("cut at {cut}"));
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ),
                "cut at {cut}: {err:?}"
            );
        }
        let mut garbage = stored.clone();
        garbage.extend_from_slice(b"\0\0\0\0");
        assert_eq!(
            read_all(&garbage).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_all(b"plain text").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn skippable_frames_are_skipped_and_checked() {
        let mut stored = vec![0x5A, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 1, 2, 3];
        stored.extend(frame(b"payload", |_, _| {}));
        stored.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0]);
        assert_eq!(read_all(&stored).unwrap(), b"payload");
        stored.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 9, 0, 0, 0, 1]);
        assert_eq!(
            read_all(&stored).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn unknown_frame_versions_are_refused() {
        let mut stored = frame(b"data", |_, _| {});
        stored[4] ^= 0xC0; // FLG version bits 01 -> 10
        let err = read_all(&stored).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("version"), "{err}");
    }

    #[test]
    fn skippable_magic_range() {
        assert!(is_skippable(0x184D_2A50));
        assert!(is_skippable(0x184D_2A5F));
        assert!(!is_skippable(0x184D_2A60));
        assert!(!is_skippable(FRAME_MAGIC));
    }
}
