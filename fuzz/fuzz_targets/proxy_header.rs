#![no_main]
//! See `portcullis::fuzzing::proxy_header` for what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis::fuzzing::proxy_header(data));
