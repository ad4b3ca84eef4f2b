#!/usr/bin/env bash
# Makes the runtime base image offline when the Docker engine does not have it: a
# minimal Debian bookworm from debootstrap (Debian's packages are reachable where no
# registry is), trimmed of docs and apt lists, imported under the name the Dockerfile
# uses (debian:bookworm-slim by default). Does nothing when the image exists.
#
#   deploy/docker/base-image.sh [image-name]
#
# Needs root (debootstrap), debootstrap and docker.
set -euo pipefail
image=${1:-debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" > /dev/null 2>&1; then
  echo "$image exists"
  exit 0
fi
for tool in debootstrap docker tar; do
  command -v "$tool" > /dev/null || { echo "base-image.sh needs $tool (apt-get install $tool)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "base-image.sh needs root (debootstrap)" >&2; exit 2; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap --variant=minbase bookworm from $mirror …"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# What a slim image leaves out: package lists, caches, docs, man pages, locales.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} +
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" > /dev/null
echo "imported $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
