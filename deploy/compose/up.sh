#!/usr/bin/env bash
# Starts the containerised cluster (compose.yaml + host-ports.yaml) and waits until all
# nine services are ready.
#
#   deploy/compose/up.sh [--prebuilt DIR | --no-build] [--project NAME]
#
# --prebuilt DIR  build the image from binaries built on the host (e.g. target/release;
#                 no registry needed, see deploy/docker/build.sh)
# --no-build      use the images already there (ROBUSTMQ_IMAGE, PROMETHEUS_IMAGE)
# Default: the full multi-stage build (needs the rust and debian images from a registry).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=full
prebuilt=
project=${COMPOSE_PROJECT_NAME:-robustmq}
while [ $# -gt 0 ]; do
  case $1 in
    --prebuilt) build=prebuilt; prebuilt=$2; shift 2 ;;
    --no-build) build=none; shift ;;
    --project) project=$2; shift 2 ;;
    *) echo "usage: $0 [--prebuilt DIR | --no-build] [--project NAME]" >&2; exit 2 ;;
  esac
done
for tool in docker docker-compose curl; do
  command -v "$tool" > /dev/null || { echo "up.sh needs $tool" >&2; exit 2; }
done
docker info > /dev/null 2>&1 || { echo "no Docker engine answers (docker info)" >&2; exit 2; }

version=$(awk -F'"' '/^version = / {print $2; exit}' "$root/Cargo.toml")
export ROBUSTMQ_IMAGE=${ROBUSTMQ_IMAGE:-robustmq:$version}
export PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-robustmq-prometheus:$version}
case $build in
  full) "$root/deploy/docker/build.sh" --tag "$ROBUSTMQ_IMAGE" ;;
  prebuilt) "$root/deploy/docker/build.sh" --tag "$ROBUSTMQ_IMAGE" --prebuilt "$prebuilt" ;;
  none) ;;
esac
if [ "$build" != none ] || ! docker image inspect "$PROMETHEUS_IMAGE" > /dev/null 2>&1; then
  "$here/prometheus-image.sh" --tag "$PROMETHEUS_IMAGE"
fi

compose=(docker-compose -p "$project" -f "$here/compose.yaml" -f "$here/host-ports.yaml")
start=$(date +%s)
"${compose[@]}" up -d
echo "waiting for the nine services to be ready (/readyz) …"
pending=
for _ in $(seq 1 120); do
  pending=
  for svc in placement-center journal-server mqtt-broker; do
    for i in 0 1 2; do
      id=$("${compose[@]}" ps -q "$svc-$i")
      ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
      curl -sf -o /dev/null --max-time 2 "http://$ip:9091/readyz" || pending="$pending $svc-$i"
    done
  done
  [ -z "$pending" ] && break
  sleep 1
done
if [ -n "$pending" ]; then
  echo "not ready after 120 s:$pending (docker-compose -p $project logs <service>)" >&2
  exit 1
fi
echo "ready in $(( $(date +%s) - start )) s"
cat <<EOT
MQTT:        127.0.0.1:${MQTT_PORT_0:-1883}, :${MQTT_PORT_1:-1884}, :${MQTT_PORT_2:-1885} (mqtt-broker-0..2)
WebSocket:   ws://127.0.0.1:${WS_PORT_0:-8083}/mqtt (and :${WS_PORT_1:-8084}, :${WS_PORT_2:-8085})
Prometheus:  http://127.0.0.1:${PROMETHEUS_PORT:-9090} (rules loaded; try cluster_qos:robustmq_messages_received:rate5m)
Logs:        docker-compose -p $project logs -f mqtt-broker-0
Stop:        deploy/compose/down.sh${project:+ --project $project}   (keeps nothing: volumes go too)
EOT
