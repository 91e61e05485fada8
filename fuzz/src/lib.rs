//! What the fuzz targets share.

/// Read sizes for feeding input in pieces: 1 to `max` bytes, a xorshift sequence seeded by
/// `seed` (the first input byte), so that a finding replays the same pieces.
pub fn read_sizes(seed: u8, max: u32) -> impl Iterator<Item = usize> {
    let mut x = u32::from(seed) | 1;
    std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        Some((x % max) as usize + 1)
    })
}
