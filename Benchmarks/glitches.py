"""The forecast combiner alone (no daemon, no network) on every NAB series, clean and with sensor
glitches, for one or more versions of its reference implementation — e.g. this one against the
version before the outlier gate:

    git show 839fc2f:Tests/Fixtures/forecast/combiner_ref.py > /tmp/combiner_before.py
    python Benchmarks/glitches.py Tests/Fixtures/forecast/combiner_ref.py /tmp/combiner_before.py

Glitches (as `forecast.py --glitch`): at 30, 60 and 80 % of each series a lone 1e9, a lone -9999,
or a run of three -9999. Scored on the clean series, second half, leaving out the targets at a
glitch and right after it; each cell is the MSE over the better of the clean series' persistence
and running mean, summarised as the median and geometric mean over the series and the worst one.
"""
import argparse
import glob
import importlib.util
import math
import os
import sys
from multiprocessing import Pool

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from forecast import glitched, load, persistence, running_mean, second_half_mse  # noqa: E402

KINDS = [("clean", None, 1), ("lone 1e9", 1e9, 1), ("lone -9999", -9999.0, 1), ("three -9999", -9999.0, 3)]


def module(path):
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0] + str(abs(hash(path))), path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def one(job):
    path, references = job
    xs = load(path)
    out = {}
    for kind, value, run in KINDS:
        ys, skip = glitched(xs, value, run) if value is not None else (xs, frozenset())
        base = min(second_half_mse(xs, persistence(xs), skip), second_half_mse(xs, running_mean(xs), skip))
        for ref in references:
            c = module(ref).Combiner(network=False)
            mse = second_half_mse(xs, [c.step(y) for y in ys], skip)
            out[(ref, kind)] = mse / base if base > 0 else (1.0 if mse <= 1e-12 else math.inf)
    return os.path.basename(path), out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("references", nargs="+", help="combiner_ref.py files to compare")
    p.add_argument("--nab", default=os.path.join(HERE, "..", "..", "shared", "tools", "nab"))
    a = p.parse_args()
    files = sorted(glob.glob(os.path.join(a.nab, "data", "*", "*.csv")))
    with Pool(os.cpu_count()) as pool:
        rows = pool.map(one, [(f, a.references) for f in files])
    print(f"{len(files)} NAB series; cells: median / geometric mean (finite series) / worst\n")
    print("| reference | " + " | ".join(k for k, _, _ in KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for ref in a.references:
        cells = []
        for kind, _, _ in KINDS:
            v = sorted(o[(ref, kind)] for _, o in rows)
            finite = [x for x in v if math.isfinite(x)]
            geo = math.exp(sum(math.log(max(x, 1e-12)) for x in finite) / len(finite))
            cells.append(f"{v[len(v) // 2]:.3g} / {geo:.4g} / {v[-1]:.4g}")
        print(f"| {ref} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
