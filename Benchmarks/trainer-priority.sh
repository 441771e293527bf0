#!/bin/bash
# The trainer's priorities side by side (README, "The trainer's default"): for each round, against
# a fresh daemon each time, interleaved between `--trainer-priority background` and `idle`:
#   - the share of due TBPTT windows trained at each of RATES (5 s of load, 2 s to finish);
#   - serving p99 at 20k msg/s (three 3 s trials on one daemon);
#   - the top sustained rate with learning on (`recurd bench load --rates sweep`).
# The model and load are the load benchmark's: LSTM input 8, hidden 64, 1,000 streams of one-step
# messages over TCP loopback. Prints one line per measurement.
#
# Usage: Benchmarks/trainer-priority.sh [RECURD_BINARY]   (env: ROUNDS=3 RATES="100000 130000")
set -euo pipefail
B=${1:-$(dirname "${BASH_SOURCE[0]}")/../.build/release/recurd}
B=$(realpath "$B")
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-100000 130000}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$B" init --cell lstm --hidden 64 --input-size 8 --output-size 8 --head linear --seed 1 -o "$W/m.safetensors" >/dev/null
PORT=27100

# serve PRIORITY: starts a daemon with learning on; sets S (pid) and P (its base port).
serve() {
    PORT=$((PORT + 10)); P=$PORT
    "$B" serve --model "$W/m.safetensors" --input tcp://127.0.0.1:$P --input-socket pull --output tcp://127.0.0.1:$((P + 1)) \
        --control tcp://127.0.0.1:$((P + 2)) --http "" --log-level error --no-combine --learn --trainer-priority "$1" &
    S=$!
    sleep 1.5
}
stop() { kill $S; wait $S 2>/dev/null || true; }
load() { "$B" bench load --input tcp://127.0.0.1:$P --output tcp://127.0.0.1:$((P + 1)) "$@"; }
stats() { "$B" ctl --connect tcp://127.0.0.1:$((P + 2)) stats; }

share() {   # PRIORITY RATE
    serve "$1"
    local before after trial
    before=$(stats)
    trial=$(load --rates "$2" --duration 5 | grep '^{' | tail -1)
    sleep 2
    after=$(stats)
    stop
    python3 - "$1" "$2" "$before" "$after" "$trial" <<'PY'
import json, sys
name, rate, b, a, t = sys.argv[1], sys.argv[2], *(json.loads(x) for x in sys.argv[3:])
d = {k: a[k] - b[k] for k in ["windows_due", "windows_trained", "windows_dropped", "windows_coalesced"]}
print(f"{name:10} share at {int(rate):,} msg/s: {100 * d['windows_trained'] / max(1, d['windows_due']):.1f} % "
      f"(due {d['windows_due']}, trained {d['windows_trained']}, dropped {d['windows_dropped']}, coalesced {d['windows_coalesced']}; "
      f"serving p99 {t['p99_us']:.0f} µs)")
PY
}

p99() {   # PRIORITY
    serve "$1"
    echo "$1 p99 at 20k msg/s (µs): $(load --rates 20000,20000,20000 --duration 3 | grep '^{' | python3 -c 'import json,sys; print(" ".join("%.0f" % json.loads(l)["p99_us"] for l in sys.stdin))')"
    stop
}

sweep() {   # PRIORITY
    serve "$1"
    echo "$1 top sustained rate, learning on: $(load --rates sweep --duration 3 | grep max_sustained | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_sustained_rate"])')"
    stop
}

grep -m3 -E '^(model name|cpu family|model)\s' /proc/cpuinfo
echo "avx2: $(grep -c -m1 avx2 /proc/cpuinfo || true), avx512f: $(grep -c -m1 avx512f /proc/cpuinfo || true), cores: $(nproc)"
for r in $(seq "$ROUNDS"); do
    for rate in $RATES; do share background "$rate"; share idle "$rate"; done
    p99 background; p99 idle
    sweep background; sweep idle
done
