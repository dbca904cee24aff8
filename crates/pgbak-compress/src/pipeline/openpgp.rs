//! Whether a stored file is encrypted, told from its first bytes: an OpenPGP message that starts
//! with a session key packet, as `gpg --encrypt` and `gpg --symmetric` write them (RFC 9580,
//! sections 4.2, 5.1 and 5.3). Barman asks `file(1)` for "PGP ... encrypted"; this looks at the
//! same packets, and also knows the ECDH and X25519 keys that `file` does not name.
//!
//! The check reads the packet header and the first fields of the session key packet (version,
//! key or cipher algorithm), so plain PostgreSQL files and the compressed formats of this crate
//! never match: their first bytes are a WAL page magic, a heap page LSN, a tar member name, `{`
//! or a compression magic number.

/// How many leading bytes [`looks_encrypted`] needs to decide.
pub(crate) const PROBE_LEN: usize = 32;

/// Public-key algorithms that can encrypt a session key: RSA, RSA encrypt-only, Elgamal, ECDH,
/// Elgamal (legacy), X25519, X448.
const PUBLIC_KEY_ALGORITHMS: [u8; 7] = [1, 2, 16, 18, 20, 25, 26];

/// Symmetric ciphers: IDEA, TripleDES, CAST5, Blowfish, AES-128/192/256, Twofish, Camellia.
fn is_cipher(id: u8) -> bool {
    matches!(id, 1..=4 | 7..=13)
}

/// AEAD modes: EAX, OCB, GCM.
fn is_aead(id: u8) -> bool {
    matches!(id, 1..=3)
}

/// Whether `prefix`, the first bytes of a file (ideally 32 or more), opens an encrypted OpenPGP
/// message.
///
/// ```
/// use pgbak_compress::pipeline::looks_encrypted;
///
/// // What `gpg --symmetric` writes first: a version 4 symmetric-key session key packet, AES-256.
/// assert!(looks_encrypted(&[0x8c, 0x0d, 0x04, 0x09, 0x03, 0x02, 0xb3, 0xbd]));
/// // A PostgreSQL 15 WAL page.
/// assert!(!looks_encrypted(&[0x10, 0xd1, 0x06, 0x00, 0x01, 0, 0, 0]));
/// ```
pub fn looks_encrypted(prefix: &[u8]) -> bool {
    let mut rest = prefix;
    // A marker packet ("PGP") may come first.
    for _ in 0..2 {
        let Some(p) = packet(rest) else { return false };
        match p.tag {
            1 => return public_key_session_key(&p),
            3 => return symmetric_key_session_key(&p),
            10 if p.len == 3 && p.body == b"PGP" => rest = p.after,
            _ => return false,
        }
    }
    false
}

/// The key an encrypted OpenPGP message that starts with `prefix` is encrypted to, as GnuPG
/// names it: the 16 hex digits of the long key ID of its first public-key session key packet
/// (version 3), or the fingerprint (version 6). `None` for a message encrypted with a passphrase,
/// to a hidden recipient (`--throw-keyids`), or for anything that is not an encrypted message.
///
/// ```
/// use pgbak_compress::pipeline::recipient_key_id;
///
/// let head = [0x84, 0x5e, 0x03, 0x3b, 0x9e, 0xc6, 0x46, 0x76, 0x5b, 0x2c, 0x49, 0x12, 0x01, 0x07];
/// assert_eq!(recipient_key_id(&head).as_deref(), Some("3B9EC646765B2C49"));
/// ```
pub fn recipient_key_id(prefix: &[u8]) -> Option<String> {
    let mut rest = prefix;
    for _ in 0..2 {
        let p = packet(rest)?;
        match p.tag {
            1 if public_key_session_key(&p) => {
                let id = match p.body {
                    [3, id @ ..] => id.get(..8)?,
                    [6, n @ (21 | 33), id @ ..] => id.get(1..*n as usize)?,
                    _ => return None,
                };
                if id.iter().all(|&b| b == 0) {
                    return None;
                }
                return Some(id.iter().map(|b| format!("{b:02X}")).collect());
            }
            10 if p.len == 3 && p.body == b"PGP" => rest = p.after,
            _ => return None,
        }
    }
    None
}

/// One packet header, with as much of its body as `prefix` holds.
struct Packet<'a> {
    tag: u8,
    len: usize,
    body: &'a [u8],
    after: &'a [u8],
}

fn packet(prefix: &[u8]) -> Option<Packet<'_>> {
    let (&first, rest) = prefix.split_first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let (tag, len, rest) = if first & 0x40 != 0 {
        let (&l0, rest) = rest.split_first()?;
        match l0 {
            0..=191 => (first & 0x3f, l0 as usize, rest),
            192..=223 => {
                let (&l1, rest) = rest.split_first()?;
                let len = ((l0 as usize - 192) << 8) + l1 as usize + 192;
                (first & 0x3f, len, rest)
            }
            255 => {
                let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
                (first & 0x3f, len as usize, &rest[4..])
            }
            // Partial body lengths belong to data packets, never to a session key packet.
            _ => return None,
        }
    } else {
        let tag = (first >> 2) & 0x0f;
        match first & 3 {
            0 => {
                let (&l, rest) = rest.split_first()?;
                (tag, l as usize, rest)
            }
            1 => {
                let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
                (tag, len as usize, &rest[2..])
            }
            2 => {
                let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
                (tag, len as usize, &rest[4..])
            }
            // Indeterminate length: only for data packets.
            _ => return None,
        }
    };
    Some(Packet {
        tag,
        len,
        body: &rest[..len.min(rest.len())],
        after: rest.get(len..).unwrap_or(&[]),
    })
}

/// A public-key encrypted session key packet (tag 1) of version 3 or 6.
fn public_key_session_key(p: &Packet<'_>) -> bool {
    // An RSA-16384 session key is 2 KiB; anything far larger is not one.
    if !(12..=8192).contains(&p.len) {
        return false;
    }
    match p.body {
        // Version, 8-byte key id, algorithm.
        [3, _, _, _, _, _, _, _, _, algo, ..] => PUBLIC_KEY_ALGORITHMS.contains(algo),
        // Version, length of the key version and fingerprint that follow (none, v4 or v6 key).
        [6, n @ (0 | 21 | 33), ..] => p
            .body
            .get(2 + *n as usize)
            .is_none_or(|algo| PUBLIC_KEY_ALGORITHMS.contains(algo)),
        _ => false,
    }
}

/// A symmetric-key encrypted session key packet (tag 3) of version 4, 5 or 6.
fn symmetric_key_session_key(p: &Packet<'_>) -> bool {
    if !(4..=1024).contains(&p.len) {
        return false;
    }
    match p.body {
        // Version, cipher, S2K specifier type (simple, salted, iterated, Argon2).
        [4, cipher, s2k, ..] => is_cipher(*cipher) && matches!(s2k, 0 | 1 | 3 | 4),
        [5, cipher, aead, ..] => is_cipher(*cipher) && is_aead(*aead),
        // Version, count of the fields that follow, cipher, AEAD mode.
        [6, _, cipher, aead, ..] => is_cipher(*cipher) && is_aead(*aead),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Compression, Compressor, Level};
    use std::io::Write;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn what_gnupg_writes_is_recognised() {
        // The first 24 bytes of files GnuPG 2.2 encrypted: to an RSA-3072 key, to a Curve25519
        // (ECDH) key, and with a passphrase (AES-256, iterated and salted S2K).
        for sample in [
            "85018c039825948d2dcfe2e7010bfe2eb1c1af8792ac488c",
            "845e033b9ec646765b2c4912010740b6741f425503da58ee",
            "8c0d04090302b3bdf6d8b47b1babffd2ff000186d901b1bf",
        ] {
            let bytes = hex(sample);
            assert!(looks_encrypted(&bytes), "{sample}");
            // Too little to decide is not encrypted.
            assert!(!looks_encrypted(&bytes[..3]), "{sample}");
        }
        let ids: Vec<Option<String>> = ["85018c039825948d2dcfe2e7010b", "845e033b9ec646765b2c4912"]
            .iter()
            .map(|s| recipient_key_id(&hex(s)))
            .collect();
        assert_eq!(
            ids,
            [
                Some("9825948D2DCFE2E7".into()),
                Some("3B9EC646765B2C49".into())
            ]
        );
        // A passphrase, a hidden recipient, a cut packet, clear bytes: no key.
        for sample in [
            "8c0d04090302b3bdf6d8b47b1babffd2ff000186d901b1bf",
            "845e03000000000000000012010740",
            "845e033b9ec646",
            "10d10600010000000000",
        ] {
            assert_eq!(recipient_key_id(&hex(sample)), None, "{sample}");
        }
    }

    #[test]
    fn new_format_headers_and_a_leading_marker_are_recognised() {
        // New-format PKESK v3 (tag 1: 0xc1), one-byte length.
        let mut pkesk = vec![0xc1, 0x5e, 3, 1, 2, 3, 4, 5, 6, 7, 8, 18];
        pkesk.resize(40, 0);
        assert!(looks_encrypted(&pkesk));
        // Two-byte new-format length.
        let mut two = vec![0xc1, 0xc0, 0x10, 3, 1, 2, 3, 4, 5, 6, 7, 8, 1];
        two.resize(40, 0);
        assert!(looks_encrypted(&two));
        // v6 SKESK: count, AES-256, OCB.
        assert!(looks_encrypted(&[0xc3, 0x30, 6, 0x1a, 9, 2, 4]));
        // Marker packet, then an SKESK.
        assert!(looks_encrypted(&[
            0xa8, 0x03, b'P', b'G', b'P', 0x8c, 0x0d, 0x04, 0x09, 0x03
        ]));
        // Marker packet followed by something else.
        assert!(!looks_encrypted(&[
            0xa8, 0x03, b'P', b'G', b'P', 0x10, 0xd1
        ]));
    }

    #[test]
    fn plain_and_compressed_data_are_not_encrypted() {
        let samples: [&[u8]; 7] = [
            b"",
            &[0x10, 0xd1, 0x06, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // Heap page whose LSN's high word starts with 0x84 (an old-format tag 1 header): its
            // flags byte, where a PKESK has its algorithm, is zero.
            &[
                0x84, 0x20, 0x03, 0x00, 0x28, 0x4e, 0x5a, 0x01, 0, 0, 0, 0, 0x18, 0x01,
            ],
            b"backup_label\0\0\0\0\0\0\0\0\0\0",
            b"{\"PostgreSQL-Backup-Manifest-Version\": 1}",
            // A signed message, not an encrypted one (one-pass signature packet, tag 4).
            &[0x90, 0x0d, 0x03, 0x00, 0x08, 0x01],
            // A literal data packet (tag 11), as `gpg --store` writes.
            &[0xcb, 0x10, b'b', 0, 0, 0, 0, 0],
        ];
        for s in samples {
            assert!(!looks_encrypted(s), "{s:?}");
        }
        for c in Compression::ALL {
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let mut out = Vec::new();
            let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
            enc.write_all(&[0x8c; 1000]).unwrap();
            enc.finish().unwrap();
            if c != Compression::None {
                assert!(!looks_encrypted(&out), "{c}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len % 40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8 | 0x80
                })
                .collect();
            let _ = looks_encrypted(&bytes);
        }
    }
}
