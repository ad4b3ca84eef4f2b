#!/usr/bin/env bash
# What telemetry costs, side by side in one run: two standalone brokers run at once, one
# with the default telemetry (metrics recorded and exported, latency histograms with
# exemplars, the OpenTelemetry layer installed; ports 1883/9091) and one with it off
# (benches/scripts/telemetry-off.toml; ports 11883/19091). Each case runs against one,
# then the other, alternating for several rounds; it prints medians and the overhead.
#
#   cargo build --release -p mqtt-bench -p mqtt-broker
#   benches/scripts/telemetry.sh [rounds] [duration]
#
# Cases (the #7 single-node scenarios):
#   fan-in-qos0    10 publishers flat out -> 1 subscriber        (throughput)
#   fan-out-qos0   1 publisher flat out -> 10 subscribers        (throughput)
#   p2p-qos1       10 pairs x 1000 msg/s                         (latency)
set -euo pipefail
rounds=${1:-3}
duration=${2:-10s}
bin=${BIN:-target/release}
out=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
for b in mqtt-bench mqtt-broker; do
  [ -x "$bin/$b" ] || { echo "no $bin/$b: see the build command at the top" >&2; exit 2; }
done

"$bin/mqtt-broker" --listen 127.0.0.1:1883 --metrics-listen 127.0.0.1:9091 \
  --log-format json > "$out/on.log" 2>&1 &
pids+=($!)
"$bin/mqtt-broker" --config benches/scripts/telemetry-off.toml --listen 127.0.0.1:11883 \
  --metrics-listen 127.0.0.1:19091 --log-format json > "$out/off.log" 2>&1 &
pids+=($!)
for port in 9091 19091; do
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$port/readyz" > /dev/null && break
    sleep 0.1
  done
  curl -sf "127.0.0.1:$port/readyz" > /dev/null \
    || { echo "the broker on $port is not ready:"; cat "$out"/*.log; exit 1; }
done

cases=(
  "fan-in-qos0|fan-in -q 0"
  "fan-out-qos0|fan-out -q 0"
  "p2p-qos1|p2p -q 1 -r 1000"
)
for case in "${cases[@]}"; do
  name=${case%%|*}
  read -r -a args <<< "${case#*|}"
  for round in $(seq 1 "$rounds"); do
    for mode in on off; do
      port=1883
      [ "$mode" = off ] && port=11883
      run="$out/$name.$mode.$round"
      "$bin/mqtt-bench" "${args[@]}" --addr "127.0.0.1:$port" -d "$duration" \
        --no-progress --json "$run.json" > "$run.txt" || [ -s "$run.json" ] \
        || { echo "run failed ($name, telemetry $mode, round $round):"; cat "$run.txt"; exit 1; }
    done
  done
done

python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
runs = {}
for name in sorted(os.listdir(out)):
    if name.endswith(".json"):
        case, mode, _ = name[:-5].split(".")
        r = json.load(open(os.path.join(out, name)))
        runs.setdefault((case, mode), []).append(
            (r["receive_rate"], r["latency"]["p50_us"], r["latency"]["p99_us"]))
rounds = len(next(iter(runs.values())))
print(f"medians over {rounds} rounds, one standalone broker each, same machine, same run")
print(f"{'case':<14} {'on msg/s':>10} {'off msg/s':>10} {'on/off':>7} "
      f"{'p50 on':>9} {'p50 off':>9} {'p99 on':>9} {'p99 off':>9} {'p99 on/off':>10}")
for case in sorted({c for c, _ in runs}):
    on, off = runs[(case, "on")], runs[(case, "off")]
    med = lambda rows, i: statistics.median(x[i] for x in rows)
    print(f"{case:<14} {med(on,0):>10,.0f} {med(off,0):>10,.0f} {med(on,0)/med(off,0):>7.3f} "
          f"{med(on,1)/1000:>7.2f}ms {med(off,1)/1000:>7.2f}ms "
          f"{med(on,2)/1000:>7.2f}ms {med(off,2)/1000:>7.2f}ms {med(on,2)/med(off,2):>10.3f}")
PY
