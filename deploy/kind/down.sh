#!/usr/bin/env bash
# Deletes the kind cluster deploy/kind/up.sh made (everything in it goes with it).
#
#   deploy/kind/down.sh [--name NAME]
set -euo pipefail
name=robustmq
[ "${1:-}" = --name ] && name=$2
command -v kind > /dev/null || { echo "down.sh needs kind" >&2; exit 2; }
kind delete cluster --name "$name"
