//! Tar streams (ustar, GNU long names, pax headers, base-256 numbers) through the streaming
//! parser: the events must not depend on where the input is cut, and every entry's data adds up
//! to its size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_copy::tar::{TarEntry, TarHeader, TarStreamParser, TarVisitor, BLOCK_SIZE};
use pgbak_fuzz::{chunks, fix_tar_checksums};

#[derive(Debug, PartialEq)]
enum Event {
    Start(TarEntry),
    Data(u64),
    End,
    ArchiveEnd,
}

#[derive(Default)]
struct Record {
    events: Vec<Event>,
    open: Option<(u64, u64)>,
}

impl TarVisitor for Record {
    fn entry_start(&mut self, e: &TarEntry) -> pgbak_copy::Result<()> {
        assert!(self.open.is_none(), "entry started inside another");
        assert!(!e.path.as_os_str().is_empty());
        self.open = Some((e.size, 0));
        self.events.push(Event::Start(e.clone()));
        Ok(())
    }
    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        let (size, seen) = self.open.as_mut().expect("data outside an entry");
        *seen += data.len() as u64;
        assert!(*seen <= *size, "more data than the entry's size");
        // Consecutive data events are merged: their cut depends on the caller's chunks.
        match self.events.last_mut() {
            Some(Event::Data(n)) => *n += data.len() as u64,
            _ => self.events.push(Event::Data(data.len() as u64)),
        }
        Ok(())
    }
    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        let (size, seen) = self.open.take().expect("end outside an entry");
        assert_eq!(size, seen, "entry ended before its size");
        self.events.push(Event::End);
        Ok(())
    }
    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        assert!(self.open.is_none());
        self.events.push(Event::ArchiveEnd);
        Ok(())
    }
}

/// Feeds `parts` and returns the events and whether the stream was complete and valid.
fn run(parts: &[&[u8]]) -> (Vec<Event>, bool) {
    let mut parser = TarStreamParser::new();
    let mut rec = Record::default();
    for p in parts {
        if parser.feed(p, &mut rec).is_err() {
            // A failed parser stays failed.
            assert!(parser.feed(b"\0", &mut rec).is_err());
            assert!(parser.finish().is_err());
            return (rec.events, false);
        }
    }
    let ok = parser.finish().is_ok();
    assert_eq!(ok, parser.is_ended());
    (rec.events, ok)
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let (seed, body) = rest.split_at(rest.len().min(usize::from(flags >> 4)));
    let mut data = body.to_vec();
    if flags & 1 == 1 {
        fix_tar_checksums(&mut data);
    }
    for block in data.chunks_exact(BLOCK_SIZE) {
        let _ = TarHeader::parse(block.try_into().expect("one block"));
    }
    let whole = run(&[&data]);
    let cut = run(&chunks(&data, seed));
    // Where the input is cut changes nothing, complete or not.
    assert_eq!(whole, cut);
    if whole.1 {
        assert_eq!(whole.0.last(), Some(&Event::ArchiveEnd));
    }
});
