#![no_main]
//! A stored trace document read back, written again and read back: the same record.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = std::str::from_utf8(data) {
        portcullis_store::fuzz_trace_doc(doc);
    }
});
