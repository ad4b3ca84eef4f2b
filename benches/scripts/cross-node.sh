#!/usr/bin/env bash
# Cross-node against single-node delivery on a running cluster, side by side in one run
# (issue #9's benchmark). Each case runs with publishers and subscribers on broker 1
# ("same node"), then with publishers on broker 1 and subscribers on broker 2 ("cross
# node"), alternating for several rounds; it prints medians and the cross/same ratio.
#
#   cargo run --release -p local-cluster            # in another terminal
#   cargo build --release -p mqtt-bench
#   benches/scripts/cross-node.sh [rounds] [duration]
#
# Cases (the standard scenarios of benches/README.md):
#   fan-in-qos0  10 publishers, unlimited rate, 64 B -> 1 subscriber (throughput)
#   p2p-qos1     10 pairs x 1000 msg/s, 64 B (latency)
#   p2p-qos1-max 10 pairs flat out, 64 B (QoS 1 throughput: each publisher keeps its
#                inflight window full, so the rate is what the acknowledgements allow)
# Env: BENCH (default target/release/mqtt-bench), NODE1/NODE2 (default 127.0.0.1:1883/1884).
set -euo pipefail
rounds=${1:-3}
duration=${2:-10s}
bench=${BENCH:-target/release/mqtt-bench}
node1=${NODE1:-127.0.0.1:1883}
node2=${NODE2:-127.0.0.1:1884}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p mqtt-bench" >&2; exit 2; }

cases=(
  "fan-in-qos0|fan-in -q 0"
  "p2p-qos1|p2p -q 1 -r 1000"
  "p2p-qos1-max|p2p -q 1"
)
for case in "${cases[@]}"; do
  name=${case%%|*}
  read -r -a args <<< "${case#*|}"
  for round in $(seq 1 "$rounds"); do
    for mode in same cross; do
      sub=$node1
      [ "$mode" = cross ] && sub=$node2
      run="$out/$name.$mode.$round"
      # A QoS 1/2 loss makes mqtt-bench exit 1; the table shows it, so keep going.
      "$bench" "${args[@]}" --pub-addr "$node1" --sub-addr "$sub" -d "$duration" \
        --no-progress --json "$run.json" > "$run.txt" || [ -s "$run.json" ] \
        || { echo "run failed ($name, $mode, round $round):"; cat "$run.txt"; exit 1; }
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
        runs.setdefault((case, mode), []).append((r["receive_rate"], r["latency"]["p99_us"], lost))
rounds = len(next(iter(runs.values())))
print(f"medians over {rounds} rounds; same node = pub and sub on node 1, cross node = pub on 1, sub on 2")
print(f"{'case':<12} {'same msg/s':>12} {'cross msg/s':>12} {'ratio':>6} {'p99 same':>9} {'p99 cross':>10} {'lost':>6}")
for case in sorted({c for c, _ in runs}):
    same, cross = runs[(case, "same")], runs[(case, "cross")]
    med = lambda rows, i: statistics.median(x[i] for x in rows)
    lost = sum(x[2] for x in same + cross)
    print(f"{case:<12} {med(same,0):>12,.0f} {med(cross,0):>12,.0f} {med(cross,0)/med(same,0):>6.2f}"
          f" {med(same,1)/1000:>7.2f}ms {med(cross,1)/1000:>8.2f}ms {lost:>6}")
PY
