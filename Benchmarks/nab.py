"""NAB benchmark (issue 8): the daemon's anomaly scores on the whole Numenta Anomaly Benchmark,
scored by NAB's own scorer.

All 58 series stream through one `recurd serve --anomaly-scores` (otherwise its defaults: the
model is created from the first stream and shared by all, each series is its own stream), one
step per message, each output awaited before the next step. The scores go into NAB's results
format under a copy of ../shared/tools/nab, and NAB's `run.py` optimises the threshold and scores
the standard, reward_low_FP_rate and reward_low_FN_rate profiles.

usage: python Benchmarks/nab.py --nab ../shared/tools/nab --nab-python PYTHON [--recurd .build/release/recurd]
  PYTHON: a Python with pandas 1.x, numpy < 2, simplejson and python-dateutil (NAB's scorer needs
  them; Benchmarks/run.sh nab makes one under .build/nabenv).
Writes Benchmarks/results/nab.md.
"""
import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Clients", "python", "src"))
from recurd import wire  # noqa: E402
from local_daemon import LocalDaemon  # noqa: E402

SCOREBOARD = [("ARTime", 74.9, 65.1, 80.4), ("Numenta HTM", 70.5, 62.6, 75.2), ("CAD OSE", 69.9, 67.0, 73.2),
              ("earthgecko Skyline", 58.2, None, None), ("KNN CAD", 58.0, None, None), ("Relative Entropy", 54.6, None, None),
              ("Random Cut Forest", 51.7, None, None), ("Windowed Gaussian", 39.6, None, None)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
    p.add_argument("--nab", default=os.path.join(ROOT, "..", "shared", "tools", "nab"))
    p.add_argument("--nab-python", required=True)
    p.add_argument("--work", default=os.path.join(ROOT, ".build", "nab"), help="the scorer's working copy (replaced)")
    p.add_argument("--detector", default="recurd")
    p.add_argument("--flags", default="", help="extra `recurd serve` flags")
    p.add_argument("--output", default=os.path.join(HERE, "results/nab.md"))
    a = p.parse_args()

    # The scorer writes into its folder: work on a copy.
    shutil.rmtree(a.work, ignore_errors=True)
    shutil.copytree(a.nab, a.work)
    subprocess.run(["chmod", "-R", "u+w", a.work], check=True)
    with open(os.path.join(a.work, "labels", "combined_windows.json")) as fh:
        windows = json.load(fh)

    flags = ["--anomaly-scores"] + a.flags.split()
    daemon = LocalDaemon(a.recurd, flags)
    push, sub = daemon.push, daemon.sub
    time.sleep(0.3)

    data = os.path.join(a.work, "data")
    files = sorted(os.path.relpath(os.path.join(d, f), data) for d, _, fs in os.walk(data) for f in fs if f.endswith(".csv"))
    started, steps, alerts = time.time(), 0, 0
    for rel in files:
        with open(os.path.join(data, rel)) as fh:
            rows = list(csv.DictReader(fh))
        key = rel.encode()
        scores = []
        for t, row in enumerate(rows):
            msg = wire.encode_input(wire.InputMessage.build(x=[float(row["value"])], seq=t))
            for attempt in range(100):
                push.send_multipart([key, msg])
                if sub.poll(100 if t == 0 else 10_000):
                    break
                if t > 0:
                    raise RuntimeError(f"{rel}: no answer to step {t}")
                # Before the subscription is live the first output can be lost: start the stream again.
                msg = wire.encode_input(wire.InputMessage.build(x=[float(row["value"])], seq=0, reset=True))
            out = wire.decode_output(sub.recv_multipart()[1])
            s = float(out.anomaly[0])
            scores.append(0.0 if s != s else s)
        steps += len(rows)
        alerts += sum(1 for s in scores if s >= 0.3)
        spans = [(w[0], w[1]) for w in windows.get(rel, [])]
        category, name = os.path.split(rel)
        out_dir = os.path.join(a.work, "results", a.detector, category)
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"{a.detector}_{name}"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score", "label"])
            for row, s in zip(rows, scores):
                ts = row["timestamp"]
                label = int(any(start[:19] <= ts[:19] <= end[:19] for start, end in spans))
                w.writerow([ts, row["value"], repr(s), label])
        print(f"{rel}: {len(rows)} steps, {sum(1 for s in scores if s >= 0.3)} alerts", flush=True)
    streamed = time.time() - started
    daemon.close()

    # NAB's own scorer.
    subprocess.run([a.nab_python, "run.py", "-d", a.detector, "--optimize", "--score", "--normalize", "--skipConfirmation", "-n", "1"],
                   cwd=a.work, check=True)
    with open(os.path.join(a.work, "results", "final_results.json")) as fh:
        final = json.load(fh)[a.detector]
    std, low_fp, low_fn = final["standard"], final["reward_low_FP_rate"], final["reward_low_FN_rate"]

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = ["# NAB benchmark", "",
             f"`Benchmarks/run.sh nab` on {cpu}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: all {len(files)} NAB series "
             f"({steps} steps) through one `recurd serve {' '.join(flags)}`, one step per message, in {streamed:.0f} s; scored by "
             "NAB's own `run.py --optimize --score --normalize`.", "",
             "| detector | standard | reward low FP | reward low FN |", "|---|---|---|---|",
             f"| **recurd (`--anomaly-scores`)** | **{std:.1f}** | **{low_fp:.1f}** | **{low_fn:.1f}** |"]
    for name, s, fp, fn in SCOREBOARD:
        lines.append(f"| {name} | {s} | {fp if fp is not None else '—'} | {fn if fn is not None else '—'} |")
    lines += ["", f"Steps scored at or above the alert level 0.3: {alerts} of {steps} ({1000 * alerts / steps:.2f} per 1000).",
              "The scoreboard rows are NAB's published results (github.com/numenta/NAB)."]
    with open(a.output, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
