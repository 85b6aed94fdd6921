#!/usr/bin/env bash
# Parley's whole test suite, from a fresh machine: installs what the tests
# need, then checks formatting, lints, and runs every test. CI calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real peers the tests drive (SIPp, sipsak; OpenSSL's client is part of
# the base system) are installed here, so a clean machine passes as it is.
bash tests/peers/install.sh

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets --locked
