"""Learning-quality benchmarks (issue 4): recurd's online TBPTT (`recurd fit`, DESIGN §3) against
a PyTorch implementation of the same semantics, from the same initial model, in the same run.

- text: byte-level LSTM 128 (embedding 32, softmax over 256) on Data/text/shakespeare.txt —
  progressive bits/byte after 100k and after 1M bytes, and wall time (k1 16, k2 32, Adam 0.005,
  clip 1). PyTorch peer: peers/torch_fit.py.
- sensors: the four NAB series in Data/nab — progressive MSE in standard deviations² (running
  standardisation), against PyTorch (peers/torch_fit_series.py) and against the persistence
  forecast (next = last) scored by the same rule. GRU 32, k1 1, k2 16, Adam 0.0005, clip 1.

usage: python Benchmarks/learning.py [--recurd .build/release/recurd] [--text-bytes 1000000] [--quick]
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

p = argparse.ArgumentParser()
p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
p.add_argument("--text-bytes", type=int, default=1_000_000)
p.add_argument("--quick", action="store_true", help="20k bytes of text and the first 2,000 rows of each series")
p.add_argument("--output", default=os.path.join(HERE, "results/learning.md"))
a = p.parse_args()
text_bytes = 20_000 if a.quick else a.text_bytes
rows_limit = 2000 if a.quick else None
work = tempfile.mkdtemp(prefix="recurd-learning-")
env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def recurd_fit(model, data, args, normalize=False):
    report = os.path.join(work, "report.json")
    run([a.recurd, "fit", "--model", model, "--input", data, "--report", report, "--quiet"] + args + (["--normalize"] if normalize else []))
    return json.load(open(report))


# --- text --------------------------------------------------------------------------------------
text = os.path.join(work, "text.txt")
with open(os.path.join(ROOT, "Data/text/shakespeare.txt"), "rb") as f:
    open(text, "wb").write(f.read()[:text_bytes])
lstm = os.path.join(work, "lstm128.safetensors")
run([a.recurd, "init", "--cell", "lstm", "--hidden", "128", "--vocab", "256", "--embed", "32", "--output-size", "256",
     "--head", "softmax", "--seed", "1", "-o", lstm])
text_args = ["--k1", "16", "--k2", "32", "--optimizer", "adam", "--lr", "0.005", "--clip", "1"]
early = min(100_000, text_bytes - 1)
print("text: recurd …", file=sys.stderr)
rt = recurd_fit(lstm, text, text_args)
r_early = next(pt["running_loss"] for pt in rt["curve"] if pt["targets"] >= early)
print("text: PyTorch …", file=sys.stderr)
pt = json.loads(run([sys.executable, os.path.join(HERE, "peers/torch_fit.py"), "--input", text, "--steps", str(text_bytes),
                     "--model", lstm, "--marks", f"{early},{text_bytes - 1}"]).strip().splitlines()[-1])
p_early, p_all = pt["marks"][str(early)], pt["marks"][str(text_bytes - 1)]
bits = 1 / math.log(2)

# --- sensors -----------------------------------------------------------------------------------
gru = os.path.join(work, "gru32.safetensors")
run([a.recurd, "init", "--cell", "gru", "--hidden", "32", "--input-size", "1", "--output-size", "1", "--head", "linear",
     "--seed", "1", "-o", gru])
series_args = ["--k1", "1", "--k2", "16", "--optimizer", "adam", "--lr", "0.0005", "--clip", "1"]


def persistence(path):
    """Next = last, scored like recurd's progressive loss: ((x_{t+1} − x_t) / σ_{t+1})²."""
    xs = [float(line.split(",")[-1]) for line in open(path).read().splitlines()[1:]]
    n, mean, m2, out, prev = 0, 0.0, 0.0, [], None
    for x in xs:
        n += 1
        d = x - mean
        mean += d / n
        m2 += d * (x - mean)
        if prev is not None:
            out.append(((x - prev) / math.sqrt(m2 / n + 1e-12)) ** 2)
        prev = x
    half = len(out) // 2
    return sum(out) / len(out), sum(out[half:]) / (len(out) - half)


sensors = []
for name in ["machine_temperature_system_failure", "nyc_taxi", "ec2_cpu_utilization_825cc2", "art_daily_jumpsup"]:
    src = os.path.join(ROOT, "Data/nab", name + ".csv")
    path = os.path.join(work, name + ".csv")
    lines = open(src).read().splitlines()
    open(path, "w").write("\n".join(lines[: (rows_limit + 1) if rows_limit else None]) + "\n")
    print(f"{name}: recurd, PyTorch …", file=sys.stderr)
    r = recurd_fit(gru, path, series_args, normalize=True)
    t = json.loads(run([sys.executable, os.path.join(HERE, "peers/torch_fit_series.py"), "--model", gru, "--input", path,
                        "--k1", "1", "--k2", "16", "--lr", "0.0005", "--clip", "1"]).strip().splitlines()[-1])
    pers, pers_half = persistence(path)
    sensors.append((name, r, t, pers, pers_half))

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
try:
    import torch
    tv = torch.__version__
except ImportError:
    tv = "?"
lines = [
    "# recurd learning-quality benchmarks",
    "",
    f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; one thread each; PyTorch {tv}. "
    "Both sides start from the same `recurd init` model and apply DESIGN §3 with the same settings.",
    "",
    f"## Text: byte-level LSTM 128 on Shakespeare ({text_bytes:,} bytes; k1 16, k2 32, Adam 0.005, clip 1)",
    "",
    "| | bits/byte after 100k | bits/byte after all | wall time | bytes/s |",
    "|---|---|---|---|---|",
    f"| recurd fit | {r_early * bits:.4f} | {rt['mean_loss'] * bits:.4f} | {rt['seconds']:.1f} s | {rt['steps_per_second']:,.0f} |",
    f"| PyTorch | {p_early * bits:.4f} | {p_all * bits:.4f} | {pt['seconds']:.1f} s | {pt['steps_per_second']:,.0f} |",
    "",
    f"Quality: recurd / PyTorch bits per byte = {rt['mean_loss'] / p_all:.4f} (target within 1 %). "
    f"Speed: **{pt['seconds'] / rt['seconds']:.1f}×** PyTorch's wall time (target ≥ 20×).",
    "",
    "## Sensors: NAB series, progressive MSE in standard deviations² (GRU 32; k1 1, k2 16, Adam 0.0005, clip 1; running standardisation)",
    "",
    "| series | steps | recurd | PyTorch | persistence | recurd, 2nd half | persistence, 2nd half | recurd time | PyTorch time |",
    "|---|---|---|---|---|---|---|---|---|",
]
for name, r, t, pers, pers_half in sensors:
    lines.append(f"| {name} | {r['steps']:,} | {r['mean_loss']:.4f} | {t['mean_loss']:.4f} | {pers:.4f} | {r['second_half_loss']:.4f} | "
                 f"{pers_half:.4f} | {r['seconds']:.2f} s | {t['seconds']:.1f} s |")
lines += [
    "",
    "Second half: the mean over the second half of the series, after the model has had the first half to learn.",
    "",
    "Reproduce: `python Benchmarks/learning.py` (or `Benchmarks/run.sh learning`).",
]
out = "\n".join(lines) + "\n"
os.makedirs(os.path.dirname(a.output), exist_ok=True)
open(a.output, "w").write(out)
print(out)
