#!/usr/bin/env bash
# Broker CPU per delivery at a fixed message rate: the steadiest measure of hot-path
# cost on a shared machine. Flat-out runs (mqtt-bench compare) measure throughput, which
# moves by 10-30 % from run to run here; at a rate every broker sustains, the CPU time
# the broker process spent per message delivered moves by 2-3 %.
#
#   cargo build --release -p mqtt-bench -p mqtt-broker
#   benches/scripts/cpu-per-delivery.sh [rounds] -- BROKER... -- SCENARIO-ARGS...
#
# BROKER is `rumqttd` (mqtt-bench serve-rumqttd) or a path to an mqtt-broker binary,
# optionally with flags after a colon: `target/release/mqtt-broker:--worker-threads 1`.
# Each round starts every broker afresh on 127.0.0.1:18830, in rotated order, and runs
# `mqtt-bench SCENARIO-ARGS` against it; the script prints the median per broker.
#
#   benches/scripts/cpu-per-delivery.sh 3 -- rumqttd /tmp/old/mqtt-broker \
#     target/release/mqtt-broker -- fan-out -s 10 -q 0 -r 50000 -d 6s
set -euo pipefail
rounds=${1:-3}
shift
[ "${1:-}" = -- ] || { sed -n 2,16p "$0"; exit 2; }
shift
brokers=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do brokers+=("$1"); shift; done
[ "${1:-}" = -- ] && [ ${#brokers[@]} -gt 0 ] || { sed -n 2,16p "$0"; exit 2; }
shift
scenario=("$@")
bench=${BENCH:-target/release/mqtt-bench}
[ -x "$bench" ] || { echo "no $bench: see the build command at the top" >&2; exit 2; }
out=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

# cpu_ticks PID: user + system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq 1 "$rounds"); do
  n=${#brokers[@]}
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + round - 1) % n ))
    spec=${brokers[$i]}
    if [ "$spec" = rumqttd ]; then
      "$bench" serve-rumqttd --v4 127.0.0.1:18830 --v5 127.0.0.1:18831 > "$out/log" 2>&1 &
    else
      read -r -a extra <<< "${spec#*:}"
      [ "$spec" = "${spec%%:*}" ] && extra=()
      "${spec%%:*}" "${extra[@]}" --listen 127.0.0.1:18830 --metrics-listen 127.0.0.1:19830 \
        --log-format json > "$out/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 1 100); do
      (exec 3<>/dev/tcp/127.0.0.1/18830) 2>/dev/null && break
      sleep 0.05
    done
    before=$(cpu_ticks "$pid")
    "$bench" "${scenario[@]}" --addr 127.0.0.1:18830 --no-progress --json "$out/run.json" \
      > "$out/run.txt" || [ -s "$out/run.json" ] || { cat "$out/run.txt" "$out/log"; exit 1; }
    after=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    python3 - "$out/run.json" "$((after - before))" "$(getconf CLK_TCK)" "$spec" \
      >> "$out/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
received = r["received"]
cpu_us = int(sys.argv[2]) * 1e6 / int(sys.argv[3])
print(f"{sys.argv[4]}\t{cpu_us / max(received, 1):.4f}\t{r['latency']['p99_us']}")
PY
  done
done
python3 - "$out/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    spec, us, p99 = line.rstrip("\n").split("\t")
    rows.setdefault(spec, []).append((float(us), float(p99)))
print(f"medians over {len(next(iter(rows.values())))} rounds")
print(f"{'broker':<50} {'CPU us/delivery':>16} {'p99 ms':>8}")
for spec, r in rows.items():
    print(f"{spec:<50} {statistics.median(x[0] for x in r):>16.3f} "
          f"{statistics.median(x[1] for x in r) / 1000:>8.2f}")
PY
