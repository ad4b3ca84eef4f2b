#!/usr/bin/env bash
# Builds the Prometheus image the compose cluster uses, from Debian's prometheus package
# installed on this host (apt-get install prometheus), on the offline-made base image.
#
#   deploy/compose/prometheus-image.sh [--tag NAME]
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME]" >&2; exit 2 ;;
  esac
done
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
tag=${tag:-robustmq-prometheus:$version}
for f in /usr/bin/prometheus /usr/bin/promtool /usr/share/prometheus/web; do
  [ -e "$f" ] || { echo "no $f: apt-get install --no-install-recommends prometheus" >&2; exit 2; }
done
deploy/docker/base-image.sh debian:bookworm-slim
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin" "$context/share"
cp /usr/bin/prometheus /usr/bin/promtool "$context/bin/"
cp -r /usr/share/prometheus/. "$context/share/"
cp deploy/compose/prometheus/Dockerfile "$context/"
prometheus_version=$(prometheus --version 2>&1 | awk '/^prometheus, version/ {print $3; exit}')
DOCKER_BUILDKIT=0 docker build -q --build-arg PROMETHEUS_VERSION="$prometheus_version" \
  -t "$tag" "$context" > /dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
