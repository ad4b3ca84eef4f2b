#!/usr/bin/env bash
# RobustMQ on kind: creates the cluster (deploy/kind/cluster.yaml) unless it exists,
# builds the image, loads it into the nodes, makes sure the Prometheus Operator's CRDs
# are there, applies deploy/k8s/overlays/kind, waits for the rollout and says how to
# reach everything.
#
#   deploy/kind/up.sh [--prebuilt DIR] [--name NAME]
#
# --prebuilt DIR  build the image from binaries built on the host (cargo build --release;
#                 DIR=target/release) instead of the Dockerfile's Rust build stage.
# Needs: docker, kind, kubectl. Optional: helm (installs kube-prometheus-stack when the
# Prometheus Operator is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=robustmq
prebuilt=
while [ $# -gt 0 ]; do
  case $1 in
    --prebuilt) prebuilt=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    *) echo "usage: $0 [--prebuilt DIR] [--name NAME]" >&2; exit 2 ;;
  esac
done
missing=
for tool in docker kind kubectl; do
  command -v "$tool" > /dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "up.sh needs:$missing" >&2
  echo "  kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2
  echo "  kubectl: https://kubernetes.io/docs/tasks/tools/" >&2
  exit 2
fi
docker info > /dev/null 2>&1 || { echo "no Docker engine answers (docker info)" >&2; exit 2; }

version=$(awk -F'"' '/^version = / {print $2; exit}' "$root/Cargo.toml")
image="robustmq:$version"
context="kind-$name"

if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
  kind create cluster --name "$name" --config "$here/cluster.yaml" --wait 120s
fi
if [ -n "$prebuilt" ]; then
  "$root/deploy/docker/build.sh" --tag "$image" --prebuilt "$prebuilt"
else
  "$root/deploy/docker/build.sh" --tag "$image"
fi
kind load docker-image "$image" --name "$name"

kc() { kubectl --context "$context" "$@"; }
manifests=$(kubectl kustomize "$root/deploy/k8s/overlays/kind")
if ! kc get crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com > /dev/null 2>&1; then
  if command -v helm > /dev/null; then
    echo "installing kube-prometheus-stack (Prometheus Operator, Prometheus, Grafana, Alertmanager) …"
    helm repo add prometheus-community https://prometheus-community.github.io/helm-charts > /dev/null
    # Prometheus selects the ServiceMonitor and PrometheusRule in any namespace; Grafana's
    # sidecar loads dashboards from ConfigMaps labelled grafana_dashboard: "1".
    helm upgrade --install monitoring prometheus-community/kube-prometheus-stack \
      --kube-context "$context" --namespace monitoring --create-namespace --wait \
      --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
      --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
      --set prometheus.prometheusSpec.enableFeatures[0]=exemplar-storage \
      --set grafana.sidecar.dashboards.enabled=true \
      --set grafana.sidecar.dashboards.searchNamespace=ALL
  else
    echo "The Prometheus Operator's CRDs are missing and helm is not installed: applying" >&2
    echo "everything but the ServiceMonitor and PrometheusRule. Install the operator" >&2
    echo "(https://github.com/prometheus-operator/kube-prometheus) and run up.sh again." >&2
    manifests=$(printf '%s\n' "$manifests" | awk '
      function flush() { if (doc != "" && doc !~ /\nkind: (ServiceMonitor|PrometheusRule)\n/) printf "%s", doc; doc = "" }
      /^---$/ { flush(); doc = "---\n"; next }
      { doc = doc $0 "\n" }
      END { flush() }')
  fi
fi
printf '%s\n' "$manifests" | kc apply -f -

echo "waiting for the rollout …"
start=$(date +%s)
for s in placement-center journal-server mqtt-broker; do
  kc -n robustmq rollout status "statefulset/$s" --timeout 300s
done
kc -n robustmq rollout status deployment/otel-collector --timeout 300s
kc -n robustmq rollout status deployment/jaeger --timeout 300s
kc -n robustmq-logging rollout status daemonset/fluent-bit --timeout 300s
echo "ready in $(( $(date +%s) - start )) s"
cat <<EOT

MQTT:        127.0.0.1:1883   (mosquitto_sub -h 127.0.0.1 -t 'test/#' -v)
WebSocket:   ws://127.0.0.1:8083/mqtt
Pods:        kubectl --context $context -n robustmq get pods -o wide
Traces:      kubectl --context $context -n robustmq port-forward svc/jaeger 16686   -> http://127.0.0.1:16686
Logs:        kubectl --context $context -n robustmq-logging logs ds/fluent-bit -f   (enriched JSON records)
Prometheus:  kubectl --context $context -n monitoring port-forward svc/monitoring-kube-prometheus-prometheus 9090
Grafana:     kubectl --context $context -n monitoring port-forward svc/monitoring-grafana 3000:80   (admin / prom-operator)
Remove:      deploy/kind/down.sh${name:+ --name $name}
EOT
