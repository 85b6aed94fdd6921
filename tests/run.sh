#!/usr/bin/env bash
# Parley's whole test suite, from a fresh machine: installs what the tests
# need, then checks formatting, lints, and runs every test. CI calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need beyond the Rust toolchain is installed here, by the
# scripts under tests/peers, so a clean machine passes as it is.
if [ -x tests/peers/install.sh ]; then
  tests/peers/install.sh
fi

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets --locked
