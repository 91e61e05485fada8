#![no_main]
//! The DATA receiver: the same bytes give the same outcome and the same end position whether
//! they come in one read or in arbitrary pieces (the first byte seeds the piece sizes).
use libfuzzer_sys::fuzz_target;
use portcullis_smtp::data::{DataReceiver, Feed};

/// Feeds `data` in pieces of the given sizes; the outcome and where the terminator ended.
fn run(data: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> String {
    let mut r = DataReceiver::new(1024);
    let mut pos = 0;
    while pos < data.len() {
        let n = sizes
            .next()
            .unwrap_or(data.len())
            .clamp(1, data.len() - pos);
        match r.feed(&data[pos..pos + n]) {
            Feed::NeedMore => pos += n,
            Feed::Done { consumed, outcome } => {
                assert!(consumed <= n, "consumed past the input");
                return format!("{:?} at {}", outcome, pos + consumed);
            }
        }
    }
    "more".to_string()
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, data)) = data.split_first() else {
        return;
    };
    let whole = run(data, &mut std::iter::empty());
    let mut sizes = portcullis_fuzz::read_sizes(*seed, 7);
    let pieces = run(data, &mut sizes);
    assert_eq!(whole, pieces, "the read boundaries changed the outcome");
});
