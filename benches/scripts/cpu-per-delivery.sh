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
#
# MEASURE=instructions counts instructions instead (valgrind's callgrind, apt-get install
# valgrind): the broker runs about 50x slower, so use rates it keeps up with there (e.g.
# fan-in -p 10 -r 500), but the count barely moves between runs and includes no time
# spent waiting for the CPU. Counters are zeroed once the broker listens and dumped when
# the scenario ends; KEEP=DIR keeps the dumps for callgrind_annotate.
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
measure=${MEASURE:-cpu}
launch=()
case $measure in
  cpu) unit="CPU us/delivery" ;;
  instructions)
    unit="instructions/delivery"
    launch=(valgrind --tool=callgrind --dump-instr=no) ;;
  *) echo "MEASURE is cpu or instructions, not $measure" >&2; exit 2 ;;
esac
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
    [ "$measure" = instructions ] && launch[3]=--callgrind-out-file="$out/callgrind.$round.$i"
    if [ "$spec" = rumqttd ]; then
      "${launch[@]}" "$bench" serve-rumqttd --v4 127.0.0.1:18830 --v5 127.0.0.1:18831 > "$out/log" 2>&1 &
    else
      read -r -a extra <<< "${spec#*:}"
      [ "$spec" = "${spec%%:*}" ] && extra=()
      "${launch[@]}" "${spec%%:*}" "${extra[@]}" --listen 127.0.0.1:18830 --metrics-listen 127.0.0.1:19830 \
        --log-format json > "$out/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 1 600); do
      (exec 3<>/dev/tcp/127.0.0.1/18830) 2>/dev/null && break
      sleep 0.05
    done
    [ "$measure" = instructions ] && callgrind_control -z "$pid" > /dev/null 2>&1
    before=$(cpu_ticks "$pid")
    "$bench" "${scenario[@]}" --addr 127.0.0.1:18830 --no-progress --json "$out/run.json" \
      > "$out/run.txt" || [ -s "$out/run.json" ] || { cat "$out/run.txt" "$out/log"; exit 1; }
    after=$(cpu_ticks "$pid")
    cost=$(( (after - before) * 1000000 / $(getconf CLK_TCK) ))
    if [ "$measure" = instructions ]; then
      callgrind_control -d "$pid" > /dev/null 2>&1
      dump=$(ls "$out/callgrind.$round.$i".* | head -n 1)
      cost=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
      [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$dump" "$KEEP/"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    python3 - "$out/run.json" "$cost" "$spec" >> "$out/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[3]}\t{int(sys.argv[2]) / max(r['received'], 1):.4f}\t{r['latency']['p99_us']}")
PY
  done
done
python3 - "$out/results" "$unit" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    spec, us, p99 = line.rstrip("\n").split("\t")
    rows.setdefault(spec, []).append((float(us), float(p99)))
print(f"medians over {len(next(iter(rows.values())))} rounds")
print(f"{'broker':<50} {sys.argv[2]:>22} {'p99 ms':>8}")
for spec, r in rows.items():
    print(f"{spec:<50} {statistics.median(x[0] for x in r):>22.3f} "
          f"{statistics.median(x[1] for x in r) / 1000:>8.2f}")
PY
