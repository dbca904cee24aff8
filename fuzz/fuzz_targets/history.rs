//! Timeline history files (`0000000N.history`), as read from the archive or TIMELINE_HISTORY.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::protocol::stream::check_timeline_history;
use pgbak_wal::TimelineHistory;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let tli = u32::from(first) + 1;
    let _ = check_timeline_history(tli, &format!("{tli:08X}.history"), rest);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(history) = TimelineHistory::parse(tli, text) else {
        return;
    };
    // What a successful parse promises: ancestors increase, stay below tli, switchpoints ordered.
    for pair in history.entries.windows(2) {
        assert!(pair[0].parent_tli < pair[1].parent_tli);
        assert!(pair[0].switchpoint <= pair[1].switchpoint);
    }
    for e in &history.entries {
        assert!(e.parent_tli < tli);
        assert_eq!(history.switchpoint_of(e.parent_tli), Some(e.switchpoint));
        let _ = history.timeline_of(e.switchpoint);
    }
    // Written back as PostgreSQL writes it, it parses to the same history (reasons are trimmed
    // single lines).
    let written: String = history
        .entries
        .iter()
        .map(|e| format!("{}\t{}\t{}\n", e.parent_tli, e.switchpoint, e.reason))
        .collect();
    let back = TimelineHistory::parse(tli, &written)
        .unwrap_or_else(|e| panic!("{written:?} (from {text:?}) does not parse: {e}"));
    assert_eq!(back, history);
});
