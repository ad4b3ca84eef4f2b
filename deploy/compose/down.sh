#!/usr/bin/env bash
# Stops the containerised cluster and removes its containers, network and volumes.
#
#   deploy/compose/down.sh [--project NAME]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=${COMPOSE_PROJECT_NAME:-robustmq}
[ "${1:-}" = --project ] && project=$2
docker-compose -p "$project" -f "$here/compose.yaml" -f "$here/host-ports.yaml" down -v --timeout 30
