#![no_main]
//! See `portcullis::fuzzing::rules_on_message` for what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis::fuzzing::rules_on_message(data));
