#!/usr/bin/env bash
# The main job, for now: build a sample topology of real NATs in network namespaces,
# show it, send probes across it, and tear it down. Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "the NAT lab needs root (it creates network namespaces); run: sudo $0" >&2
  exit 1
fi
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
need=()
for p in nftables conntrack iproute2 iptables tayga miniupnpd miniupnpc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
exec cargo run --release --quiet -p natlab -- demo "$@"
