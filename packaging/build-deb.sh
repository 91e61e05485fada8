#!/usr/bin/env bash
# Builds the Debian package: the release binary, then the man page and the shell completions the
# binary generates (`portcullis man`, `portcullis completions SHELL`), then `cargo deb --no-build`.
# Prints the path of the .deb. Needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CARGO_TARGET_DIR (a build cache elsewhere) is honoured; cargo-deb resolves the assets'
# target/release/ paths to it.
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p portcullis
bin=$target/release/portcullis
out=$target/release/packaging
mkdir -p "$out"
"$bin" man | gzip -9n >"$out/portcullis.1.gz"
"$bin" completions bash >"$out/portcullis.bash"
"$bin" completions zsh >"$out/_portcullis"
"$bin" completions fish >"$out/portcullis.fish"
cargo deb --no-build -p portcullis --output target/debian/ 2>&1 | tail -1 >&2
ls -t target/debian/portcullis_*.deb | head -1
