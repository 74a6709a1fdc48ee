//! WAL replay over arbitrary bytes never panics: it returns records, a torn
//! tail, or an error naming the file. Whole records re-encode identically.
#![no_main]

use footprint_storage::wal::{replay_bytes, WalRecord, WAL_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.log");
    let mut bytes = WAL_MAGIC.to_vec();
    bytes.extend_from_slice(data);
    for input in [data, &bytes[..]] {
        if let Ok(r) = replay_bytes(path, input) {
            for rec in &r.records {
                assert_eq!(&WalRecord::decode(&rec.encode()).unwrap(), rec);
            }
        }
    }
    // A record payload decoded directly.
    let _ = WalRecord::decode(data);
});
