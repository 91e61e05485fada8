//! `portcullis`: the gateway (`serve`) and the admin CLI for a running gateway (everything else).
//! Thin on purpose: the program is the library's `run`.

/// Sessions, trace records and replies are many small, short-lived allocations across threads;
/// mimalloc serves them with less contention and less work than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(portcullis::run());
}
