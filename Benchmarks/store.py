"""The stream store's costs (issue 7): memory per stream, memory under a flood of keys, the latency
of a stream coming back from the store. Runs `recurd serve` and `recurd bench store` (release build)
as separate processes on this machine; writes Benchmarks/results/store.md.

  1. memory per stream in memory: 200,000 streams (LSTM 8→64, k1 16, k2 32), each one message of
     34 steps (a full window of 32 entries), all kept in memory (--max-streams 250000); resident
     memory (RSS) growth per stream, learning on and off, and learning on with --no-combine.
  2. a flood: 1,000,000 distinct keys through a daemon holding 10,000 in memory (store on); RSS at
     each quarter; bytes per stream in the store; then the same with full windows (200,000 keys of
     34 steps) for the store's bytes per learning stream.
  3. a returning stream: lock-step one-step messages over 50 streams that stay in memory, then over
     400 streams through a daemon that holds 200, so each message's stream comes back from the store.

The throughput with the store on against off is measured by Benchmarks/load.py (same run as the
other servers).

usage: python Benchmarks/store.py [--recurd .build/release/recurd] [--quick]
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

p = argparse.ArgumentParser()
p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
p.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
p.add_argument("--output", default=os.path.join(HERE, "results/store.md"))
a = p.parse_args()
scale = 10 if a.quick else 1

work = tempfile.mkdtemp(prefix="recurd-store-")
model = os.path.join(work, "lstm-8-64.safetensors")
subprocess.run([a.recurd, "init", "--cell", "lstm", "--hidden", "64", "--input-size", "8", "--output-size", "8", "--head", "linear",
                "--seed", "1", "-o", model], check=True, capture_output=True)


def run(name, serve_flags, bench_args):
    d = os.path.join(work, name)
    os.makedirs(d)
    ep = {k: f"ipc://{d}/{k}" for k in ["in", "out", "ctl"]}
    cmd = [a.recurd, "serve", "--model", model, "--input", ep["in"], "--input-socket", "pull", "--output", ep["out"], "--control", ep["ctl"],
           "--http", "", "--log-level", "warning"] + serve_flags
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    time.sleep(1.0)
    try:
        r = subprocess.run([a.recurd, "bench", "store"] + bench_args + ["--input", ep["in"], "--output", ep["out"], "--control", ep["ctl"],
                            "--pid", str(server.pid)], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise SystemExit(f"{name}: {r.stderr.strip()}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=120)


results = {}
print("memory per stream …", flush=True)
results["memory_learning"] = run("mem-learn", ["--max-streams", "250000"], ["flood", "--keys", str(200_000 // scale), "--steps", "34", "--in-flight", "5000"])
results["memory_no_learning"] = run("mem-nolearn", ["--max-streams", "250000", "--no-learn"],
                                    ["flood", "--keys", str(200_000 // scale), "--steps", "34", "--in-flight", "5000"])
# The plain form (DESIGN §3 without the forecast combination, whose per-feature state is most of a
# default 8-feature stream's record).
results["memory_learning_plain"] = run("mem-learn-plain", ["--max-streams", "250000", "--no-combine"],
                                       ["flood", "--keys", str(200_000 // scale), "--steps", "34", "--in-flight", "5000"])
print("flood of 1M keys …", flush=True)
results["flood"] = run("flood", ["--max-streams", "10000", "--state-dir", os.path.join(work, "flood", "state")],
                       ["flood", "--keys", str(1_000_000 // scale)])
results["flood_full_windows"] = run("flood-full", ["--max-streams", "10000", "--state-dir", os.path.join(work, "flood-full", "state")],
                                    ["flood", "--keys", str(200_000 // scale), "--steps", "34", "--in-flight", "5000"])
print("returning streams …", flush=True)
results["returning"] = run("returning", ["--max-streams", "200", "--max-batch", "64", "--state-dir", os.path.join(work, "returning", "state")],
                           ["returning", "--resident", "50", "--returning", "400", "--messages", str(4000 // scale)])
results["returning_plain"] = run("returning-plain", ["--max-streams", "200", "--max-batch", "64", "--no-combine",
                                                     "--state-dir", os.path.join(work, "returning-plain", "state")],
                                 ["returning", "--resident", "50", "--returning", "400", "--messages", str(4000 // scale)])

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
family = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu family")), "?")
cpumodel = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model\t")), "?")
m, n, f, ff, r = (results[k] for k in ["memory_learning", "memory_no_learning", "flood", "flood_full_windows", "returning"])
mp, rp = results["memory_learning_plain"], results["returning_plain"]
mb = lambda b: f"{b / 2**20:.0f} MB"
lines = [
    "# recurd stream store benchmark",
    "",
    f"Machine: {cpu} (family {family}, model {cpumodel}), {os.cpu_count()} cores, Linux {platform.release()}. "
    "Daemon and load generator are separate processes (ipc); release build. Model: LSTM 8→64, linear head; k1 16, k2 32.",
    "",
    "## Memory per stream (all streams in memory)",
    "",
    "| | streams | RSS per stream, marginal (100k → 200k streams) | RSS growth over the base, per stream |",
    "|---|---|---|---|",
    f"| learning on (full windows: 34 steps each) | {m['streams_in_memory'] - 1:,} | **{m['rss_marginal_bytes_per_key']:,.0f} B** | {m['rss_per_stream_in_memory_bytes']:,.0f} B |",
    f"| learning off | {n['streams_in_memory'] - 1:,} | {n['rss_marginal_bytes_per_key']:,.0f} B | {n['rss_per_stream_in_memory_bytes']:,.0f} B |",
    f"| learning on, `--no-combine` (the plain form) | {mp['streams_in_memory'] - 1:,} | {mp['rss_marginal_bytes_per_key']:,.0f} B | {mp['rss_per_stream_in_memory_bytes']:,.0f} B |",
    "",
    "The first two rows run the daemon's defaults, under which these 8-feature forecasting streams keep the forecast",
    "combination's state (nine forecasters and two Hedge layers per feature); the last row leaves it out.",
    "",
    "The growth over the base includes buffers that grow once to their working size (messages in flight, a cycle's outputs);",
    "the marginal figure is what one more stream costs.",
    "",
    "## A flood of keys through 10,000 streams in memory (store on)",
    "",
    f"{f['keys']:,} distinct keys, one step each, at {f['keys_per_second']:,.0f} keys/s: RSS "
    + ", ".join(f"{x['keys']:,} keys → {mb(x['rss_bytes'])}" for x in f["rss"])
    + f" (base {mb(f['rss_base_bytes'])}). Streams in memory at the end: {f['streams_in_memory']:,}; stored: {f['streams_stored']:,}; "
    f"store {mb(f['store_bytes'])}, {f['store_bytes_per_stream']:,.0f} B per stored stream.",
    "",
    f"With full windows ({ff['keys']:,} keys of 34 steps): {ff['store_bytes_per_stream']:,.0f} B per stored stream "
    f"(in memory: {m['rss_marginal_bytes_per_key']:,.0f} B); {ff['keys_per_second']:,.0f} keys/s.",
    "",
    "## A stream coming back from the store",
    "",
    "| lock-step one-step messages | p50 | p99 |",
    "|---|---|---|",
    f"| {r['resident_streams']} streams in memory | {r['resident_p50_us']:.0f} µs | {r['resident_p99_us']:.0f} µs |",
    f"| {r['returning_streams']} streams through 200 slots (each message's stream comes back from the store) | {r['returning_p50_us']:.0f} µs | {r['returning_p99_us']:.0f} µs |",
    "",
    f"A returning stream's prediction costs **{r['extra_p50_us']:.0f} µs** more at the median ({r['records_restored']:,} records restored); "
    f"with `--no-combine` (smaller records) {rp['extra_p50_us']:.0f} µs (resident p50 {rp['resident_p50_us']:.0f} µs, returning "
    f"{rp['returning_p50_us']:.0f} µs, p99 {rp['returning_p99_us']:.0f} µs).",
    "",
    "Raw results:",
    "",
] + [f"- {k}: `{json.dumps(v)}`" for k, v in results.items()]
text = "\n".join(lines) + "\n"
os.makedirs(os.path.dirname(a.output), exist_ok=True)
open(a.output, "w").write(text)
print(text)
