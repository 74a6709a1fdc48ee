//! Ingest-row parsing (NDJSON in every shape, JSON arrays, CSV) never
//! panics, and every row is either accepted or rejected with a line number.
#![no_main]

use footprint_storage::parse::{parse_batch, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Auto, Format::Json, Format::Csv] {
        let p = parse_batch(text, format, 1);
        for e in &p.errors {
            assert!(e.line >= 1 || text.is_empty());
        }
        for ev in &p.events {
            assert!(!ev.user.is_empty() && !ev.event.is_empty());
            assert!((0..=footprint_storage::event::MAX_TIME).contains(&ev.time));
        }
    }
});
