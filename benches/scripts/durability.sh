#!/usr/bin/env bash
# What durability costs, side by side in one run: two local clusters run at once, one
# with `[cluster] durability = true` (benches/scripts/cross-node.toml, ports as in the
# README) and one with it off (benches/scripts/durability-off.toml, ports + 10000).
# Each case runs against one, then the other, alternating for several rounds, with
# publishers on broker 1 and subscribers on broker 2; it prints medians and ratios.
#
#   cargo build --release -p local-cluster -p mqtt-bench \
#     -p mqtt-broker -p journal-server -p placement-center
#   benches/scripts/durability.sh [rounds] [duration]
#
# Cases:
#   p2p-qos1-persistent   10 pairs x 1000 msg/s, persistent sessions (latency)
#   p2p-qos1-persistent-max  10 pairs flat out, persistent sessions (throughput)
#   p2p-qos1-clean-max    the same with clean sessions (only forward answers are waited for)
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
for b in local-cluster mqtt-bench mqtt-broker journal-server placement-center; do
  [ -x "$bin/$b" ] || { echo "no $bin/$b: see the build command at the top" >&2; exit 2; }
done

start() { # name, port offset, broker config
  "$bin/local-cluster" --no-build --bin-dir "$bin" --fresh --data-dir "data/bench-$1" \
    --port-offset "$2" --broker-config "$3" --status-interval 3600 > "$out/$1.log" 2>&1 &
  pids+=($!)
}
wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1; cluster log:" >&2; cat "$out"/*.log >&2; exit 1
}
start on 0 benches/scripts/cross-node.toml
start off 10000 benches/scripts/durability-off.toml
for port in 1883 1884 11883 11884; do wait_port "$port"; done

cases=(
  "p2p-qos1-persistent|p2p -q 1 -r 1000 --persistent"
  "p2p-qos1-persistent-max|p2p -q 1 --persistent"
  "p2p-qos1-clean-max|p2p -q 1"
)
for case in "${cases[@]}"; do
  name=${case%%|*}
  read -r -a args <<< "${case#*|}"
  for round in $(seq 1 "$rounds"); do
    for mode in on off; do
      base=1883
      [ "$mode" = off ] && base=11883
      run="$out/$name.$mode.$round"
      "$bin/mqtt-bench" "${args[@]}" --pub-addr "127.0.0.1:$base" \
        --sub-addr "127.0.0.1:$((base + 1))" -d "$duration" \
        --no-progress --json "$run.json" > "$run.txt" || [ -s "$run.json" ] \
        || { echo "run failed ($name, durability $mode, round $round):"; cat "$run.txt"; exit 1; }
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
        lost = sum(q["lost"] for q in r["by_qos"].values() if q is not None)
        runs.setdefault((case, mode), []).append(
            (r["receive_rate"], r["latency"]["p50_us"], r["latency"]["p99_us"], lost))
rounds = len(next(iter(runs.values())))
print(f"medians over {rounds} rounds; publishers on broker 1, subscribers on broker 2")
print(f"{'case':<24} {'durable msg/s':>14} {'off msg/s':>10} {'ratio':>6} "
      f"{'p50 on':>8} {'p50 off':>8} {'p99 on':>8} {'p99 off':>8} {'lost on/off':>12}")
for case in sorted({c for c, _ in runs}):
    on, off = runs[(case, "on")], runs[(case, "off")]
    med = lambda rows, i: statistics.median(x[i] for x in rows)
    lost = f"{sum(x[3] for x in on)}/{sum(x[3] for x in off)}"
    print(f"{case:<24} {med(on,0):>14,.0f} {med(off,0):>10,.0f} {med(on,0)/med(off,0):>6.2f} "
          f"{med(on,1)/1000:>6.2f}ms {med(off,1)/1000:>6.2f}ms "
          f"{med(on,2)/1000:>6.2f}ms {med(off,2)/1000:>6.2f}ms {lost:>12}")
PY
