"""ONNX Runtime peer for `recurd bench step`: the recurd model file, loaded into PyTorch
(recurd_torch.py) and exported once to ONNX (two ONNX LSTM nodes with explicit h0/c0 inputs and
hn/cn outputs, then the head; dynamic batch axis), run one time step per session.run with the
state fed back — numpy arrays in, numpy arrays out, as a user would. One thread: intra/inter-op
threads 1, sequential execution, graph optimisation level ALL, CPU execution provider.

Before timing, once: the batch-1 outputs of ONNX Runtime and of PyTorch on a 20-step random CSV
are compared with `recurd run --model FILE --input CSV`; the max abs differences go to stderr
(with a WARNING if either is ≥ 1e-4) and into the JSON line.

Timed, per step: session.run(None, {"x": x_t, "h0": h, "c0": c}). Not timed: export, session
creation, the check, input generation (a ring of 64 pre-generated steps), warm-up.

The export runs in a separate Python process (this one never imports torch) and is cached in
${RECURD_BENCH_CACHE:-~/.cache/recurd-bench}/onnx/, keyed by the model file's SHA-256.

usage: ort_step.py --model FILE --batch B --steps N --warmup W [--recurd PATH]
Prints one JSON line with the keys of `recurd bench step` ("impl": "onnxruntime").
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import steptiming

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOLERANCE = 1e-4


def cache_dir() -> Path:
    d = Path(os.environ.get("RECURD_BENCH_CACHE", Path.home() / ".cache" / "recurd-bench")) / "onnx"
    d.mkdir(parents=True, exist_ok=True)
    return d


def wait_for(path: Path, seconds: float = 300) -> Path:
    """The recurd binary may be being rebuilt; wait for it to reappear."""
    deadline = time.monotonic() + seconds
    while not os.access(path, os.X_OK):
        if time.monotonic() > deadline:
            sys.exit(f"ort_step.py: {path} is not there (waited {seconds:.0f} s)")
        time.sleep(2)
    return path


def torch_helper(*args):
    subprocess.run([sys.executable, str(HERE / "recurd_torch.py"), *args], check=True)


def export(model: str) -> Path:
    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:32]
    out = cache_dir() / f"{digest}.onnx"
    if not out.exists():
        tmp = out.with_suffix(f".tmp-{os.getpid()}.onnx")
        torch_helper("--model", model, "--onnx", str(tmp))
        tmp.replace(out)
    return out


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def state_shape(sess, batch):
    layers, _, hidden = sess.get_inputs()[1].shape
    return (layers, batch, hidden)


def check(model: str, sess, recurd: Path):
    """Max abs difference of ORT's and torch's batch-1 outputs against `recurd run`."""
    n_in = sess.get_inputs()[0].shape[2]
    with tempfile.TemporaryDirectory(prefix="recurd-bench-") as d:
        csv = Path(d) / "x.csv"
        xs = (np.random.default_rng(11).random((20, n_in), dtype=np.float32) * 2 - 1)
        np.savetxt(csv, xs, delimiter=",", fmt="%.9g")
        xs = np.loadtxt(csv, delimiter=",", dtype=np.float32, ndmin=2)  # exactly what recurd reads
        r = subprocess.run([str(wait_for(recurd)), "run", "--model", model, "--input", str(csv)],
                           check=True, capture_output=True, text=True)
        ref = np.array([[float(v) for v in line.split(",")] for line in r.stdout.split()], dtype=np.float64)
        torch_helper("--model", model, "--check-csv", str(csv), "--check-out", str(Path(d) / "torch.npy"))
        pt = np.load(Path(d) / "torch.npy")
    h = np.zeros(state_shape(sess, 1), np.float32)
    c = np.zeros_like(h)
    ys = []
    for row in xs:
        y, h, c = sess.run(None, {"x": row.reshape(1, 1, -1), "h0": h, "c0": c})
        ys.append(y.reshape(-1))
    ox = np.stack(ys)
    assert ref.shape == ox.shape == pt.shape, f"shape mismatch: recurd {ref.shape}, ort {ox.shape}, torch {pt.shape}"
    d_ort = float(np.abs(ox - ref).max())
    d_torch = float(np.abs(pt - ref).max())
    bad = max(d_ort, d_torch) >= TOLERANCE
    print(f"{'WARNING: ' if bad else ''}check vs `recurd run` (20 steps, batch 1): max |ORT - recurd| = {d_ort:.3g}, "
          f"max |PyTorch - recurd| = {d_torch:.3g} (tolerance {TOLERANCE:g})", file=sys.stderr)
    return d_ort, d_torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--recurd", default=str(REPO / ".build" / "release" / "recurd"),
                   help="recurd binary for the correctness check (default: the repo's release build)")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with `recurd run`")
    a = p.parse_args()

    sess = session(export(a.model))
    d_ort = d_torch = None
    if not a.no_check:
        d_ort, d_torch = check(a.model, sess, Path(a.recurd).absolute())

    x_info, h_info = sess.get_inputs()[0], sess.get_inputs()[1]
    n_in = x_info.shape[2]
    layers, _, hidden = h_info.shape
    n_out = sess.get_outputs()[0].shape[2]
    ring = steptiming.ring_inputs(np.random.default_rng(7), a.batch, n_in)
    xs = [np.ascontiguousarray(ring[i]) for i in range(ring.shape[0])]  # (1, B, In) each
    h = np.zeros(state_shape(sess, a.batch), np.float32)
    c = np.zeros_like(h)
    run = sess.run
    y = None
    for t in range(a.warmup):
        y, h, c = run(None, {"x": xs[t & 63], "h0": h, "c0": c})
    lat = [0] * a.steps
    clock = time.perf_counter_ns
    start = clock()
    for t in range(a.steps):
        t0 = clock()
        y, h, c = run(None, {"x": xs[t & 63], "h0": h, "c0": c})
        lat[t] = clock() - t0
    total = clock() - start
    finite = bool(np.isfinite(y).all() and np.isfinite(h).all())
    steptiming.emit("onnxruntime", {"hidden": hidden, "layers": layers, "input": n_in, "outputs": n_out},
                    a.batch, a.steps, lat, total, finite, version=ort.__version__,
                    check_max_abs_diff_ort=d_ort, check_max_abs_diff_torch=d_torch)


if __name__ == "__main__":
    main()
