#![no_main]
//! See `portcullis::fuzzing::config_text` for what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis::fuzzing::config_text(data));
