#!/usr/bin/env bash
# Parley's whole test suite, from a fresh machine: installs what the tests
# need, then checks formatting, lints, and runs every test. CI calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The suite needs only the Rust toolchain today. Peers that later tests use
# (SIPp, Kamailio, Prosody, …) are installed here by scripts under
# tests/peers, so a clean machine passes as it is.

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets --locked
