//! Ingest-row parsing (NDJSON in every shape, JSON arrays, CSV) over
//! arbitrary bytes, UTF-8 or not, never panics; every row is accepted or
//! rejected with a line number; errors are capped and counted. A JSON array
//! cut where the bulk loader cuts it (`array_cut`) parses to the same rows
//! as the whole array.
#![no_main]

use footprint_storage::parse::{
    array_cut, is_json_array, parse_batch, parse_json_array_part, ArrayPart, Format, MAX_ROW_ERRORS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Auto, Format::Json, Format::Csv] {
        let p = parse_batch(data, format, 1);
        assert_eq!(p.errors.len(), p.rejected.min(MAX_ROW_ERRORS));
        for e in &p.errors {
            assert!(e.line >= 1);
        }
        for ev in &p.events {
            assert!(!ev.user.is_empty() && !ev.event.is_empty());
            assert!((0..=footprint_storage::event::MAX_TIME).contains(&ev.time));
        }
    }
    // Bytes that are text parse as that text does; a line the fast path
    // reads (no JSON tree) reads as the general parser reads it.
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Some(fast) = footprint_storage::parse::fast_event(line) {
                assert_eq!(Ok(fast), footprint_storage::parse::parse_json_line(line), "{line}");
            }
        }
        let (a, b) = (
            parse_batch(data, Format::Auto, 1),
            parse_batch(text, Format::Auto, 1),
        );
        assert_eq!(
            (a.events, a.errors, a.rejected),
            (b.events, b.errors, b.rejected)
        );
    }
    if is_json_array(data) {
        if let Some((cut, n)) = array_cut(data, false) {
            let whole = parse_batch(data, Format::Json, 1);
            let head = parse_json_array_part(
                &data[..cut],
                1,
                ArrayPart {
                    continued: false,
                    cut: true,
                },
            );
            let tail = parse_json_array_part(
                &data[cut + 1..],
                n + 1,
                ArrayPart {
                    continued: true,
                    cut: false,
                },
            );
            assert_eq!(head.rejected + tail.rejected, whole.rejected);
            let mut errors: Vec<_> = head.errors.into_iter().chain(tail.errors).collect();
            errors.truncate(MAX_ROW_ERRORS);
            assert_eq!(errors, whole.errors);
            let events: Vec<_> = head.events.into_iter().chain(tail.events).collect();
            assert_eq!(events, whole.events);
        }
    }
});
