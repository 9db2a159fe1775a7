#!/usr/bin/env bash
# Tsunagi's full test suite: installs what the tests need, checks formatting and
# lints, builds, runs every test (the NAT lab included when run as root) and builds
# the docs. Run from anywhere; as root on a fresh Debian 12 machine it needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
skipped=()

# Debian packages the tests use: the NAT lab (nftables, conntrack, iproute2, iptables
# for NFQUEUE, tayga, miniupnpd), independent checkers (coturn's turnutils, upnpc, natpmpc),
# and what the build needs (gcc, pkg-config).
APT_PACKAGES=(nftables conntrack iproute2 iptables coturn tayga miniupnpd miniupnpc natpmpc
  gcc pkg-config ca-certificates curl
  g++ valgrind mono-mcs mono-runtime) # C/C++/C# binding tests (ffi/tests)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [[ $EUID -eq 0 ]]; then
  if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  if ((${#missing[@]})); then
    echo "not root: cannot install ${missing[*]}; tests that need them will skip"
  fi
  skipped+=("NAT lab tests (they need root for network namespaces)")
fi

if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    say "installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

MDBOOK_VERSION=0.4.52
if ! command -v mdbook >/dev/null || [[ "$(mdbook --version)" != "mdbook v$MDBOOK_VERSION" ]]; then
  say "installing mdbook $MDBOOK_VERSION (cargo install, a few minutes once)"
  cargo install --locked --quiet mdbook --version "$MDBOOK_VERSION"
fi

say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The C header is generated from ffi/src and checked in; fail if it is stale.
CBINDGEN_VERSION=0.29.2
if ! command -v cbindgen >/dev/null || [[ "$(cbindgen --version)" != "cbindgen $CBINDGEN_VERSION" ]]; then
  say "installing cbindgen $CBINDGEN_VERSION (cargo install, a minute once)"
  cargo install --locked --quiet cbindgen --version "$CBINDGEN_VERSION"
fi
say "bindings/c/tsunagi.h matches what cbindgen generates"
fresh_header="$(mktemp)"
cbindgen --quiet --config ffi/cbindgen.toml --crate tsunagi-ffi --output "$fresh_header" ffi
if ! diff -u bindings/c/tsunagi.h "$fresh_header"; then
  echo "bindings/c/tsunagi.h is stale: run" \
    "cbindgen --config ffi/cbindgen.toml --crate tsunagi-ffi --output bindings/c/tsunagi.h ffi"
  rm -f "$fresh_header"
  exit 1
fi
rm -f "$fresh_header"

say "cargo test (release build: the NAT lab runs real traffic)"
out_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out_dir"
test_log="$out_dir/test-output.txt"
cargo test --workspace --release 2>&1 | tee "$test_log"

say "mdbook build docs"
mdbook build docs

if grep -q 'SKIPPED(' "$test_log"; then
  say "tests that skipped themselves"
  grep -o 'SKIPPED(.*' "$test_log" | sort | uniq -c
fi
if ((${#skipped[@]})); then
  say "skipped: ${skipped[*]}"
fi
say "all checks passed"
