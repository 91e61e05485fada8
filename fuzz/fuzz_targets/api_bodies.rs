#![no_main]
//! See `portcullis::fuzzing::api_bodies` for what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis::fuzzing::api_bodies(data));
