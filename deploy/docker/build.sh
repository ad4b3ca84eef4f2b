#!/usr/bin/env bash
# Builds the RobustMQ image.
#
#   deploy/docker/build.sh [--tag NAME] [--prebuilt DIR]
#
# Default: the whole multi-stage deploy/docker/Dockerfile (needs its Rust and Debian
# base images, i.e. a registry). With --prebuilt DIR: the Dockerfile's runtime stage
# alone, with the placement-center, journal-server and mqtt-broker binaries from DIR
# (e.g. target/release) stripped into it instead of the build stage's; the base image is
# made offline by base-image.sh when missing. Prints the image size.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=
prebuilt=
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
done
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
tag=${tag:-robustmq:$version}
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if [ -z "$prebuilt" ]; then
  docker build -f deploy/docker/Dockerfile --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" -t "$tag" .
else
  deploy/docker/base-image.sh debian:bookworm-slim
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  mkdir -p "$context/out"
  for b in placement-center journal-server mqtt-broker; do
    [ -x "$prebuilt/$b" ] || { echo "no $prebuilt/$b (cargo build --release first)" >&2; exit 2; }
    strip --strip-debug -o "$context/out/$b" "$prebuilt/$b"
  done
  # The runtime stage exactly as in the Dockerfile, its binaries from the context.
  { echo 'ARG RUNTIME_IMAGE=debian:bookworm-slim'
    sed -n '/^FROM \${RUNTIME_IMAGE} AS runtime/,$p' deploy/docker/Dockerfile \
      | sed 's|^COPY --from=build /out/ |COPY out/ |'
  } > "$context/Dockerfile"
  grep -q '^COPY out/ /usr/local/bin/' "$context/Dockerfile" \
    || { echo "the Dockerfile's runtime stage changed: update build.sh" >&2; exit 1; }
  DOCKER_BUILDKIT=0 docker build -q --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" -t "$tag" "$context" > /dev/null
fi
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
