"""End-to-end load benchmark: recurd serve vs a Python peer (pyzmq + ONNX Runtime), same load,
same machine, same run.

The load generator is `recurd bench load`, a separate process: 1,000 streams of one-step
messages (LSTM input 8, hidden 64, linear head 8) over TCP loopback, PUSH → the server's PULL,
predictions back over the server's PUB. For each server it measures latency at 20,000
messages/s, then sweeps the rate up to the highest one sustained with zero lost predictions
(every prediction back, the send schedule kept, and no backlog left at the end: p99 under 50 ms
over the last quarter of the trial's predictions): it doubles the rate from 10,000 until a rate
fails, then bisects three times; a rate fails only when two trials in a row miss it. Both rules
are for this 2-core VM, which pauses whole for about 100 ms now and then (an unrelated process
sleeping 1 ms at a time sees the gap at the same moment): under the old rule, p99 under 50 ms over
the whole trial, one pause failed a trial at 20,000 messages/s.
recurd is measured with learning off (the peer does not learn), with learning on, and with the stream
store on (learning off; every changed stream written every 5 s).

With --repeat N every row is measured N times, the rows interleaved (all rows once, then again),
and the table gives the median of the N sweeps' top rates and of the N latency runs: on a small
shared machine one sweep's top rate moves by up to ±50 % from run to run.

usage: python Benchmarks/load.py [--recurd .build/release/recurd] [--duration 3] [--repeat 1] [--quick]
"""
import argparse
import json
import statistics
import os
import shutil
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

p = argparse.ArgumentParser()
p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
p.add_argument("--duration", type=float, default=3.0)
p.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
p.add_argument("--repeat", type=int, default=1, help="measure every row this many times (interleaved); report medians")
p.add_argument("--output", default=os.path.join(HERE, "results/load.md"))
a = p.parse_args()
duration = 1.0 if a.quick else a.duration

work = tempfile.mkdtemp(prefix="recurd-load-")
model = os.path.join(work, "lstm-8-64.safetensors")
onnx = os.path.join(work, "lstm-8-64.onnx")
subprocess.run([a.recurd, "init", "--cell", "lstm", "--hidden", "64", "--input-size", "8", "--output-size", "8",
                "--head", "linear", "--seed", "1", "-o", model], check=True, capture_output=True)
subprocess.run([sys.executable, os.path.join(HERE, "peers/recurd_torch.py"), "--model", model, "--onnx", onnx], check=True,
               capture_output=True)


def server_command(name, port):
    inp, out = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"
    if name == "python":
        return [sys.executable, os.path.join(HERE, "peers/zmq_ort_server.py"), "--onnx", onnx, "--input", inp, "--output", out], inp, out
    learn = ["--learn"] if name == "recurd-learning" else ["--no-learn"]
    store = ["--state-dir", os.path.join(work, f"state-{port}"), "--checkpoint-interval", "5"] if name == "recurd-store" else []
    # The peer runs the network alone, so recurd does too (no forecast combination) unless the row
    # says otherwise.
    forecast = {"recurd-defaults": [], "recurd-scores": ["--no-combine", "--anomaly-scores"]}.get(name, ["--no-combine"])
    curve = ["--curve-server-cert", os.path.join(keys, "server.key_secret"), "--curve-clients", clients] if name == "recurd-curve" else []
    return [a.recurd, "serve", "--model", model, "--input", inp, "--input-socket", "pull", "--output", out, "--control",
            f"tcp://127.0.0.1:{port + 2}", "--http", "", "--log-level", "error"] + learn + store + forecast + curve, inp, out


# CURVE: a server key pair and one client allowed to produce, consume and operate.
keys, clients = os.path.join(work, "keys"), os.path.join(work, "clients")
for n in ["server", "client"]:
    subprocess.run([a.recurd, "keygen", n, "--dir", keys], check=True, capture_output=True)
for role in ["producers", "consumers", "operators"]:
    os.makedirs(os.path.join(clients, role), exist_ok=True)
    shutil.copy(os.path.join(keys, "client.key"), os.path.join(clients, role, "client.key"))
CLIENT_CURVE = ["--curve-cert", os.path.join(keys, "client.key_secret"), "--server-key", os.path.join(keys, "server.key")]


def measure(name, port, rep):
    cmd, inp, out = server_command(name, port)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    results = []
    try:
        for rates in ["20000", "sweep"]:
            r = subprocess.run([a.recurd, "bench", "load", "--input", inp, "--output", out, "--rates", rates,
                                "--duration", str(duration), "--server", name] + (CLIENT_CURVE if name == "recurd-curve" else []),
                               capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                sys.exit(f"load generator failed against {name}: {r.stderr.strip()}")
            results += [dict(json.loads(line), rep=rep, trial=rates) for line in r.stdout.splitlines() if line.startswith("{")]
        if name != "python":
            # What learning did meanwhile (updates applied, windows it could not keep up with).
            stats = subprocess.run([a.recurd, "ctl", "--connect", f"tcp://127.0.0.1:{port + 2}", "stats"] + (CLIENT_CURVE if name == "recurd-curve" else []),
                                   capture_output=True, text=True)
            if stats.returncode == 0:
                s = json.loads(stats.stdout)
                results.append({"server": name, "rep": rep, "stats": {k: s[k] for k in ["messages", "updates", "skipped_updates", "windows_coalesced",
                                                                                     "windows_dropped", "model_version", "learning"]}})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


names = ["recurd", "python", "recurd-learning", "recurd-store", "recurd-scores", "recurd-defaults", "recurd-curve"]
runs = {name: [] for name in names}
for rep in range(a.repeat):
    for i, name in enumerate(names):
        print(f"measuring {name} (round {rep + 1} of {a.repeat}) …", file=sys.stderr)
        runs[name] += measure(name, 7600 + 100 * rep + 10 * i, rep)


def trained_share(rates):
    """Learning on: the share of due windows the trainer trained, at each rate (a fresh daemon,
    5 s per rate, then 2 s for the trainer to finish what was queued)."""
    cmd, inp, out = server_command("recurd-learning", 7700)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    ctl = ["ctl", "--connect", "tcp://127.0.0.1:7702", "stats"]
    rows = []
    try:
        for rate in rates:
            before = json.loads(subprocess.run([a.recurd] + ctl, capture_output=True, text=True).stdout)
            r = subprocess.run([a.recurd, "bench", "load", "--input", inp, "--output", out, "--rates", str(rate), "--duration", str(max(duration, 5))],
                               capture_output=True, text=True, timeout=600)
            trial = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")][-1]
            time.sleep(2)
            after = json.loads(subprocess.run([a.recurd] + ctl, capture_output=True, text=True).stdout)
            due = after["windows_due"] - before["windows_due"]
            trained = after["windows_trained"] - before["windows_trained"]
            rows.append({"rate": rate, "due": due, "trained": trained, "share": trained / due if due else 1.0,
                         "dropped": after["windows_dropped"] - before["windows_dropped"],
                         "coalesced": after["windows_coalesced"] - before["windows_coalesced"],
                         "p99_us": trial["p99_us"], "lost": trial["lost"]})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def at20k(rs):
    """The dedicated 20k/s trial of each round: median latencies, lost summed."""
    trials = [r for r in rs if r.get("trial") == "20000" and "p50_us" in r]
    return {"p50_us": statistics.median([r["p50_us"] for r in trials]), "p99_us": statistics.median([r["p99_us"] for r in trials]),
            "p999_us": statistics.median([r["p999_us"] for r in trials]), "lost": sum(r["lost"] for r in trials)}


def stats(rs):
    return next((r["stats"] for r in reversed(rs) if "stats" in r), {})


def best(rs):
    """Median over the rounds of each sweep's top sustained rate."""
    return statistics.median([r["max_sustained_rate"] for r in rs if "max_sustained_rate" in r])


def tops(rs):
    return ", ".join(f"{r['max_sustained_rate']:,}" for r in rs if "max_sustained_rate" in r)


half = int(best(runs["recurd"]) / 2 // 1000 * 1000)
print("measuring the trained share …", file=sys.stderr)
shares = trained_share([20000, 100000, half])

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
lines = [
    "# recurd end-to-end load benchmark",
    "",
    f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; load generator and server are separate processes "
    f"on the same machine (TCP loopback); {duration:g} s per rate.",
    "Model: LSTM input 8, hidden 64, linear head 8; 1,000 streams of one-step binary messages. recurd rows run with "
    "`--no-combine` unless they say otherwise.",
    (f"Every row measured {a.repeat} times, rows interleaved; the table gives medians (top rates of each sweep in the last column)."
     if a.repeat > 1 else "One sweep per row."),
    "",
    "| server | max sustained messages/s (zero lost) | p50 at 20k/s | p99 at 20k/s | p99.9 at 20k/s | lost at 20k/s | each sweep's top rate |",
    "|---|---|---|---|---|---|---|",
]
for name, label in [("recurd", "recurd serve (learning off)"), ("python", "Python peer: pyzmq + ONNX Runtime, batched per drain"),
                    ("recurd-learning", "recurd serve (learning on, background trainer)"),
                    ("recurd-store", "recurd serve (learning off, stream store on, written every 5 s)"),
                    ("recurd-scores", "recurd serve (learning off, anomaly scores on)"),
                    ("recurd-defaults", "recurd serve (learning off, forecast combination on: the default for these 8-feature streams)"),
                    ("recurd-curve", "recurd serve (learning off, CURVE on input and output)")]:
    r = at20k(runs[name])
    lines.append(f"| {label} | {best(runs[name]):,.0f} | {r['p50_us']:.0f} µs | {r['p99_us']:.0f} µs | {r['p999_us']:.0f} µs | {r['lost']} | {tops(runs[name])} |")
ratio = best(runs["recurd"]) / best(runs["python"])
learn_ratio = best(runs["recurd-learning"]) / best(runs["recurd"])
store_ratio = best(runs["recurd-store"]) / best(runs["recurd"])
lines += [
    "",
    f"recurd / Python peer throughput: **{ratio:.1f}×** (target ≥ 5×). recurd p99 at 20k/s: **{at20k(runs['recurd'])['p99_us']:.0f} µs** (target ≤ 1 ms).",
    f"Learning on / learning off throughput: **{learn_ratio:.0%}** (target ≥ 70 %). During the learning-on run the trainer applied "
    f"{stats(runs['recurd-learning']).get('updates', '?')} updates; {stats(runs['recurd-learning']).get('windows_dropped', '?')} due windows were "
    f"dropped and {stats(runs['recurd-learning']).get('windows_coalesced', '?')} coalesced because it could not keep up at these rates "
    f"(it runs at SCHED_IDLE, and at nice 19 while a quarter of its queue waits and serving keeps up).",
    f"Store on / store off throughput: **{store_ratio:.0%}** (target ≥ 90 %).",
    f"CURVE on / off throughput: **{best(runs['recurd-curve']) / best(runs['recurd']):.0%}** (target ≥ 70 %); p99 at 20k/s "
    f"{at20k(runs['recurd-curve'])['p99_us']:.0f} µs with CURVE, {at20k(runs['recurd'])['p99_us']:.0f} µs without.",
    f"Anomaly scores on / off throughput: **{best(runs['recurd-scores']) / best(runs['recurd']):.0%}** (target ≥ 95 %). "
    f"Forecast combination on / off: **{best(runs['recurd-defaults']) / best(runs['recurd']):.0%}** (it runs per feature: 8 here; "
    "the other rows turn it off so that recurd does the same work as the peer).",
    "",
    "Learning that keeps up: 1,000 streams, learning on (the default `--trainer-priority background`), 5 s per rate; the share of due",
    "TBPTT windows the trainer trained (target: all of them up to half the max serving rate):",
    "",
    "| rate (msg/s) | windows due | trained | share | dropped | coalesced | serving p99 |",
    "|---|---|---|---|---|---|---|",
] + [f"| {r['rate']:,}{' (half the max)' if r['rate'] == half else ''} | {r['due']:,} | {r['trained']:,} | **{r['share']:.0%}** | {r['dropped']:,} | {r['coalesced']:,} | {r['p99_us']:.0f} µs |"
     for r in shares] + [
    "",
    "Every trial (JSON from `recurd bench load`):",
    "",
]
for name in runs:
    lines += [f"- {name}: " + json.dumps(r) for r in runs[name]]
text = "\n".join(lines) + "\n"
os.makedirs(os.path.dirname(a.output), exist_ok=True)
open(a.output, "w").write(text)
print(text)
