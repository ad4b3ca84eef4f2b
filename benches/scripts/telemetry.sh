#!/usr/bin/env bash
# What telemetry costs, side by side in one run: every measurement gets a fresh
# standalone broker on the same ports (1883/9091), either with the default telemetry
# (metrics recorded and exported, latency histograms with exemplars, the OpenTelemetry
# layer installed) or with it off (benches/scripts/telemetry-off.toml). Each case runs
# on then off, alternating the order by round, for several rounds; it prints medians and
# the overhead.
#
#   cargo build --release -p mqtt-bench -p mqtt-broker
#   benches/scripts/telemetry.sh [rounds] [duration]
#
# Why fresh processes on one port: two brokers running side by side (the first version
# of this script) differ by up to 14 % in fan-out with the *same* config, which swamps
# the effect measured. CONTROL=1 is the A/A control: "off" keeps telemetry on as well,
# so its on/off ratio is what remains of the setup's own bias.
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
broker=
cleanup() {
  [ -n "$broker" ] && kill "$broker" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
for b in mqtt-bench mqtt-broker; do
  [ -x "$bin/$b" ] || { echo "no $bin/$b: see the build command at the top" >&2; exit 2; }
done

# start_broker on|off: a fresh broker on 1883/9091, ready.
start_broker() {
  local config=()
  [ "$1" = off ] && [ "${CONTROL:-0}" != 1 ] && config=(--config benches/scripts/telemetry-off.toml)
  "$bin/mqtt-broker" "${config[@]}" --listen 127.0.0.1:1883 \
    --metrics-listen 127.0.0.1:9091 --log-format json >> "$out/$1.log" 2>&1 &
  broker=$!
  for _ in $(seq 1 100); do
    curl -sf 127.0.0.1:9091/readyz > /dev/null && return 0
    sleep 0.1
  done
  echo "the broker ($1) is not ready:"; cat "$out/$1.log"; exit 1
}

stop_broker() {
  kill -TERM "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
  broker=
}

cases=(
  "fan-in-qos0|fan-in -q 0"
  "fan-out-qos0|fan-out -q 0"
  "p2p-qos1|p2p -q 1 -r 1000"
)
for case in "${cases[@]}"; do
  name=${case%%|*}
  read -r -a args <<< "${case#*|}"
  for round in $(seq 1 "$rounds"); do
    order="on off"
    [ $((round % 2)) = 0 ] && order="off on"
    for mode in $order; do
      start_broker "$mode"
      run="$out/$name.$mode.$round"
      "$bin/mqtt-bench" "${args[@]}" --addr 127.0.0.1:1883 -d "$duration" \
        --no-progress --json "$run.json" > "$run.txt" || [ -s "$run.json" ] \
        || { echo "run failed ($name, telemetry $mode, round $round):"; cat "$run.txt"; exit 1; }
      stop_broker
    done
  done
done

python3 - "$out" "${CONTROL:-0}" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
if sys.argv[2] == "1":
    print("A/A CONTROL: both brokers have telemetry on; on/off is the setup's own bias")
runs = {}
for name in sorted(os.listdir(out)):
    if name.endswith(".json"):
        case, mode, _ = name[:-5].split(".")
        r = json.load(open(os.path.join(out, name)))
        runs.setdefault((case, mode), []).append(
            (r["receive_rate"], r["latency"]["p50_us"], r["latency"]["p99_us"]))
rounds = len(next(iter(runs.values())))
print(f"medians over {rounds} rounds, a fresh standalone broker per run, same port, same run")
print(f"{'case':<14} {'on msg/s':>10} {'off msg/s':>10} {'on/off':>7} "
      f"{'p50 on':>9} {'p50 off':>9} {'p99 on':>9} {'p99 off':>9} {'p99 on/off':>10}")
for case in sorted({c for c, _ in runs}):
    on, off = runs[(case, "on")], runs[(case, "off")]
    med = lambda rows, i: statistics.median(x[i] for x in rows)
    print(f"{case:<14} {med(on,0):>10,.0f} {med(off,0):>10,.0f} {med(on,0)/med(off,0):>7.3f} "
          f"{med(on,1)/1000:>7.2f}ms {med(off,1)/1000:>7.2f}ms "
          f"{med(on,2)/1000:>7.2f}ms {med(off,2)/1000:>7.2f}ms {med(on,2)/med(off,2):>10.3f}")
PY
