#![no_main]
//! See `portcullis::fuzzing::message_headers` for what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis::fuzzing::message_headers(data));
