#!/usr/bin/env bash
# Installs what building and testing the workspace needs beyond a Rust toolchain, and
# only what is missing: libclang (RocksDB's bindings are generated with bindgen) and,
# for the broker's integration tests, python3 with paho-mqtt 2.x. Debian/Ubuntu (apt);
# run as root or with sudo available. Used by the README's first command and by .ci/run.
set -euo pipefail

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  need=()
  command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed apt-get install -y -qq "${need[@]}"
  fi
else
  echo "no apt-get here: install libclang (for bindgen), python3 and pip yourself" >&2
fi

# paho-mqtt: the second real client the broker's integration tests drive.
if ! python3 -c 'import paho.mqtt' 2>/dev/null; then
  python3 -m pip install --quiet 'paho-mqtt==2.1.0' \
    || python3 -m pip install --quiet --break-system-packages 'paho-mqtt==2.1.0'
fi
