#!/usr/bin/env bash
# Installs what building and testing iroh-c needs, only where it is missing.
#   scripts/install-deps.sh build   Debian packages for the library and the command
#   scripts/install-deps.sh test    the above, plus clang (sanitizer/fuzz build), iptables
#                                   (the NAT routers of the network-namespace tests),
#                                   curl and openssh (through the tunnels of cli/test_tunnel) and
#                                   the npm test peer in tests/interop/node_modules
#   scripts/install-deps.sh record  tcpdump, for scripts/record-corpus.sh
# Debian packages are installed with apt-get, which needs root (or sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-build}

build_pkgs=(pkg-config nettle-dev libgmp-dev libgnutls28-dev libidn2-dev libldns-dev libsqlite3-dev)
test_pkgs=(clang libclang-rt-14-dev openssl curl iproute2 iptables openssh-server openssh-client)
record_pkgs=(tcpdump)

missing=()
want=("${build_pkgs[@]}")
[ "$what" = test ] && want+=("${test_pkgs[@]}")
[ "$what" = record ] && want=("${record_pkgs[@]}")
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >&2 || true
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

if [ "$what" = test ]; then
  peer="$here/tests/interop"
  if [ ! -f "$peer/node_modules/@number0/iroh/package.json" ]; then
    echo "install-deps: installing the npm test peer (@number0/iroh, pinned in tests/interop/package.json)" >&2
    (cd "$peer" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error >&2)
  fi
fi
