#![no_main]
//! The address parser: a parsed address prints as text that parses back to the same address.
use libfuzzer_sys::fuzz_target;
use portcullis_smtp::Address;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(a) = Address::parse(s) {
        let again = Address::parse(&a.to_string());
        assert_eq!(again.as_ref(), Some(&a), "{s:?} -> {a} does not parse back");
    }
});
