#!/usr/bin/env bash
# Installs cargo-fuzz (about 2 minutes) unless `cargo fuzz` already works. Stable toolchain only:
# run-all.sh sets RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes to rustc.
set -euo pipefail
if cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz already installed: $(cargo fuzz --version)"
    exit 0
fi
cargo install cargo-fuzz --locked --version 0.13.2
cargo fuzz --version
