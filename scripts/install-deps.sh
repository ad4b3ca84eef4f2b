#!/usr/bin/env bash
# Installs what building and testing the workspace needs beyond a Rust toolchain, and
# only what is missing: libclang (RocksDB's bindings are generated with bindgen); for
# the broker's integration tests, python3 with paho-mqtt 2.x; for the monitoring tests
# (and local-cluster --prometheus/--alertmanager), Prometheus with promtool and
# Alertmanager with amtool; with Docker, debootstrap (deploy/docker/base-image.sh) and
# docker-compose (deploy/compose); for the manifest checks, kubernetes-validate (PyPI;
# kubectl comes with the machine). Debian/Ubuntu (apt);
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
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  # The image test makes its base image with debootstrap when a Docker engine is here.
  if command -v docker >/dev/null 2>&1 && ! command -v debootstrap >/dev/null 2>&1 \
    && [ ! -x /usr/sbin/debootstrap ]; then
    need+=(debootstrap)
  fi
  if command -v docker >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    need+=(docker-compose)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    sudo_if_needed apt-get update -qq
    # No recommends: prometheus would pull in node-exporter and its collectors.
    sudo_if_needed apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
else
  echo "no apt-get here: install libclang (for bindgen), python3 and pip, prometheus (with promtool) and alertmanager (with amtool) yourself" >&2
fi

# paho-mqtt: the second real client the broker's integration tests drive.
if ! python3 -c 'import paho.mqtt' 2>/dev/null; then
  python3 -m pip install --quiet 'paho-mqtt==2.1.0' \
    || python3 -m pip install --quiet --break-system-packages 'paho-mqtt==2.1.0'
fi

# kubernetes-validate: the Kubernetes OpenAPI schemas, offline (deploy/k8s/validate.py).
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  python3 -m pip install --quiet 'kubernetes-validate==1.37.0' \
    || python3 -m pip install --quiet --break-system-packages 'kubernetes-validate==1.37.0'
fi
