//! WAL file names and the long page header at the start of every WAL segment, as archive-wal and
//! put-wal check them before storing a segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::{check_segment, parse_segment_header};
use pgbak_wal::segment::{validate_segment_size, SegmentName, WalFileName};

fuzz_target!(|data: &[u8]| {
    // A name (up to the first NUL), then the first bytes of the file; the file's length is the
    // header's own segment size or something near it.
    let (name, first) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    if let Ok(parsed) = WalFileName::parse(&name) {
        // Names are written back exactly as PostgreSQL writes them.
        assert_eq!(parsed.to_string(), name);
        for shift in 20..=30 {
            let size = 1u64 << shift;
            if let Some(seg) = parsed.segment(size) {
                assert_eq!(seg.tli, parsed.tli());
                assert_eq!(&seg.file_name(size), &name[..24]);
                let lsn = seg.start_lsn(size);
                assert_eq!(SegmentName::from_lsn(seg.tli, lsn, size), seg);
            }
        }
    }
    if let Some(header) = parse_segment_header(first) {
        let sizes = [
            header.seg_size,
            header.seg_size.wrapping_add(1),
            first.len() as u64,
        ];
        for len in sizes {
            if let Ok(checked) = check_segment(&name, first, len) {
                assert_eq!(checked, header);
                assert!(validate_segment_size(checked.seg_size).is_ok());
                assert_eq!(len, checked.seg_size);
                let seg = SegmentName::parse(&name, checked.seg_size).expect("a checked name");
                assert_eq!(seg.start_lsn(checked.seg_size).0, checked.pageaddr);
            }
        }
    } else {
        assert!(check_segment(&name, first, 16 << 20).is_err());
    }
});
