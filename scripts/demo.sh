#!/usr/bin/env bash
# The main job: two players on this machine connect through an embedded Tsunagi relay,
# play a short game-like exchange, and switch from the relay to a direct path.
# Needs no root and no server. (The NAT lab demo is `sudo cargo run -p natlab -- demo`.)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing the Rust toolchain with rustup (https://rustup.rs)"
    if ! command -v curl >/dev/null || ! command -v cc >/dev/null; then
      if [[ $EUID -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates gcc libc6-dev >/dev/null
      else
        echo "curl and a C compiler are needed: sudo apt-get install curl gcc" >&2
        exit 1
      fi
    fi
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
exec cargo run --release --quiet -p tsunagi-cli -- demo "$@"
