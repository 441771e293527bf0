"""Forecasting benchmark (issue 8): the daemon's published forecasts against simple baselines.

Each series streams through a fresh `recurd serve` (no model file: the daemon creates its default
model from the first step), one step per message, each prediction awaited before the next step
(a sensor at a modest rate, so learning keeps up). The forecast published at step t is scored
against x_{t+1}. Reported per series: second-half MSE in the stream's units, as a ratio to the
better of persistence and the running mean (the issue's yardstick), for several daemon settings
and baselines, and the time per step (the daemon's CPU time, from /proc, divided by the steps).

Baselines (pure Python, online, in the stream's units): persistence, running mean, EWMA (0.1),
an online linear model on differences (recursive least squares AR(8), forgetting 0.999, the
combiner's own expert run alone), Holt's linear trend (α 0.5, β 0.1) and, when the `river`
package is importable, river's SNARIMAX(2,1,1).

With --glitch V (and --glitch-run N) every series gets sensor glitches written over its readings
at 30 %, 60 % and 80 % of its length (N consecutive readings of V each); every setting streams the
glitched series, and is scored on the clean one, leaving out the targets at a glitch and right
after it (no forecaster can know a glitch is coming). The yardstick stays the clean series'
persistence and running mean.

usage: python Benchmarks/forecast.py [--recurd .build/release/recurd] [--series a.csv ...] [--configs N]
                                     [--glitch V [--glitch-run N]] [--output F]
Writes Benchmarks/results/forecast.md.
"""
import argparse
import csv
import math
import os
import platform
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Clients", "python", "src"))
sys.path.insert(0, os.path.join(ROOT, "Tests", "Fixtures", "forecast"))
from recurd import wire  # noqa: E402
from local_daemon import LocalDaemon  # noqa: E402
import combiner_ref  # noqa: E402

SHARED = os.path.join(ROOT, "Data", "nab")
DEFAULT_SERIES = [os.path.join(SHARED, f) for f in
                  ["art_daily_jumpsup.csv", "ec2_cpu_utilization_825cc2.csv", "machine_temperature_system_failure.csv", "nyc_taxi.csv"]]

# The daemon settings compared; the first is the default.
CONFIGS = [
    ("default (residual + combine)", []),
    ("residual, no combine", ["--no-combine"]),
    ("level + combine", ["--forecast", "level"]),
    ("level, no combine (plain)", ["--forecast", "level", "--no-combine"]),
]


def load(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    col = "value" if "value" in rows[0] else list(rows[0].keys())[-1]
    return [float(r[col]) for r in rows]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def run_daemon(recurd, xs, flags):
    """Streams xs through a fresh daemon; returns (forecasts of x_{t+1} per t, CPU s per step)."""
    with LocalDaemon(recurd, flags, subscribe=b"s") as d:
        return stream(d, xs)


def stream(d, xs):
    """One step per message through the daemon `d`, each prediction awaited."""
    push, sub = d.push, d.sub
    time.sleep(0.3)
    first = wire.encode_input(wire.InputMessage.build(x=[xs[0]], seq=0))
    # Until the subscription is live the first output may be lost: resend step 0 under a RESET
    # (a duplicate seq would be dropped) until it is answered.
    forecasts = []
    for attempt in range(200):
        msg = first if attempt == 0 else wire.encode_input(wire.InputMessage.build(x=[xs[0]], seq=0, reset=True))
        push.send_multipart([b"s", msg])
        if sub.poll(100):
            forecasts.append(wire.decode_output(sub.recv_multipart()[1]).values[0][0])
            break
    else:
        raise RuntimeError("the daemon never answered")
    cpu0 = cpu_seconds(d.pid)
    for t in range(1, len(xs)):
        push.send_multipart([b"s", wire.encode_input(wire.InputMessage.build(x=[xs[t]], seq=t))])
        if not sub.poll(10_000):
            raise RuntimeError(f"no answer to step {t}")
        forecasts.append(wire.decode_output(sub.recv_multipart()[1]).values[0][0])
    per_step = (cpu_seconds(d.pid) - cpu0) / max(1, len(xs) - 1)
    return forecasts, per_step


# ---- baselines: each a function xs -> forecasts of x_{t+1} made after x_t -------------------

def persistence(xs):
    return list(xs)


def running_mean(xs):
    out, s = [], 0.0
    for t, x in enumerate(xs):
        s += x
        out.append(s / (t + 1))
    return out


def ewma(xs, a=0.1):
    out, m = [], xs[0]
    for x in xs:
        m += a * (x - m)
        out.append(m)
    return out


def rls_ar(xs):
    """The combiner's RLS-AR(8) expert alone (expert 5 of combiner_ref)."""
    c = combiner_ref.Combiner(network=False)
    out = []
    for t, x in enumerate(xs):
        c.step(x)
        out.append(c.f[5])
    return out


def holt(xs, a=0.5, b=0.1):
    out, level, trend = [], xs[0], 0.0
    for t, x in enumerate(xs):
        if t > 0:
            prev = level
            level = a * x + (1 - a) * (level + trend)
            trend = b * (level - prev) + (1 - b) * trend
        out.append(level + trend)
    return out


def combiner_alone(xs):
    c = combiner_ref.Combiner(network=False)
    return [c.step(x) for x in xs]


def snarimax(xs):
    from river import time_series
    model = time_series.SNARIMAX(p=2, d=1, q=1)
    out = []
    for x in xs:
        model.learn_one(x)
        out.append(model.forecast(horizon=1)[0])
    return out


def ratio(mse, base, scale=1.0):
    """MSE over the yardstick's. A series a baseline forecasts exactly (base 0) counts as even when
    the setting is exact too, to 1e-12 of the series' variance (`scale`), and is left out of the
    geometric mean otherwise (reported as inf, and as worse)."""
    if base > 0:
        return mse / base
    return 1.0 if mse <= 1e-12 * max(scale, 1e-300) else float("inf")


def second_half_mse(xs, forecasts, skip=frozenset()):
    """MSE of the forecasts of x_t made at t-1 over the second half, leaving out the targets at
    and right after the steps in `skip`."""
    n = len(xs)
    errs = [(xs[t] - forecasts[t - 1]) ** 2 for t in range(max(1, n // 2), n) if t not in skip and t - 1 not in skip]
    return sum(errs) / len(errs)


def glitched(xs, value, run):
    """xs with `run` readings of `value` written over it at 30, 60 and 80 % of its length, and
    the steps written over."""
    ys, steps = list(xs), set()
    for share in (0.3, 0.6, 0.8):
        for k in range(run):
            t = min(len(xs) - 1, int(len(xs) * share) + k)
            ys[t] = value
            steps.add(t)
    return ys, frozenset(steps)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
    p.add_argument("--series", nargs="*", default=DEFAULT_SERIES)
    p.add_argument("--configs", type=int, default=len(CONFIGS), help="how many daemon settings to run (the first is the default)")
    p.add_argument("--output", default=os.path.join(HERE, "results/forecast.md"))
    p.add_argument("--glitch", type=float, help="write this value over readings at 30, 60 and 80 %% of each series")
    p.add_argument("--glitch-run", type=int, default=1, help="consecutive readings per glitch")
    a = p.parse_args()

    baselines = [("persistence", persistence), ("running mean", running_mean), ("EWMA 0.1", ewma), ("RLS-AR(8) on differences", rls_ar),
                 ("Holt (0.5, 0.1)", holt), ("combiner without the network", combiner_alone)]
    try:
        import river  # noqa: F401
        baselines.append(("river SNARIMAX(2,1,1)", snarimax))
    except ImportError:
        pass

    rows = []
    for path in a.series:
        xs = load(path)
        ys, skip = glitched(xs, a.glitch, a.glitch_run) if a.glitch is not None else (xs, frozenset())
        name = os.path.splitext(os.path.basename(path))[0]
        mean = sum(xs) / len(xs)
        result = {"series": name, "n": len(xs), "variance": sum((x - mean) ** 2 for x in xs) / len(xs),
                  "base": min(second_half_mse(xs, persistence(xs), skip), second_half_mse(xs, running_mean(xs), skip))}
        for label, f in baselines:
            t0 = time.process_time()
            fc = f(ys)
            result[label] = (second_half_mse(xs, fc, skip), (time.process_time() - t0) / len(xs))
        for label, flags in CONFIGS[:a.configs]:
            fc, per_step = run_daemon(a.recurd, ys, flags)
            result[label] = (second_half_mse(xs, fc, skip), per_step)
        rows.append(result)
        base = result["base"]
        print(name, " ".join(f"{k}={ratio(v[0], base, result['variance']):.3f}" for k, v in result.items() if isinstance(v, tuple)), flush=True)

    labels = [c[0] for c in CONFIGS[:a.configs]] + [b[0] for b in baselines]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = ["# Forecasting benchmark", "",
             f"`python Benchmarks/forecast.py` on {cpu}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Each series streamed "
             "through a fresh `recurd serve` with no model file, one step per message, each prediction awaited. Cells: second-half "
             "MSE in the stream's units divided by the better of persistence's and the running mean's (below 1 beats both); "
             "the last rows give the geometric mean and the worst series." + (
                 f" Glitches: {a.glitch_run} reading(s) of {a.glitch:g} written over each series at 30, 60 and 80 % of its length; "
                 "every setting streamed the glitched series and is scored on the clean one, without the targets at a glitch and "
                 "right after it." if a.glitch is not None else ""), "",
             "| setting | " + " | ".join(r["series"] for r in rows) + " | geometric mean | worst | time per step |",
             "|---|" + "---|" * (len(rows) + 3)]
    wide = len(rows) > 6   # a corpus: one row per series instead of one column
    if wide:
        lines = lines[:-2] + ["| series | steps | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        for r in rows:
            base = r["base"]
            lines.append(f"| {r['series']} | {r['n']} | " + " | ".join(f"{ratio(r[l][0], base, r['variance']):.3f}" for l in labels) + " |")
        lines += ["", "| setting | geometric mean | worst | better than both (< 0.9995) | even (±0.0005) | worse | time per step |",
                  "|---|---|---|---|---|---|---|"]
    for label in labels:
        ratios, times = [], []
        for r in rows:
            base = r["base"]
            ratios.append(ratio(r[label][0], base, r["variance"]))
            times.append(r[label][1])
        finite = [v for v in ratios if math.isfinite(v)]
        geo = math.exp(sum(math.log(max(v, 1e-12)) for v in finite) / max(1, len(finite)))
        t = sum(times) / len(times)
        if wide:
            better = sum(v < 0.9995 for v in ratios)
            even = sum(0.9995 <= v <= 1.0005 for v in ratios)
            lines.append(f"| {label} | **{geo:.3f}** | {max(ratios):.3f} | {better} | {even} | {len(ratios) - better - even} | {t * 1e6:.1f} µs |")
            continue
        cells = " | ".join(f"{v:.3f}" for v in ratios)
        lines.append(f"| {label} | {cells} | **{geo:.3f}** | {max(ratios):.3f} | {t * 1e6:.1f} µs |")
    if wide:
        lines += ["", "Daemon time per step is its CPU time (serving and learning threads) over the run divided by the steps; the "
                  "baselines' is Python's process time per step."]
        with open(a.output, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    lines += ["", "Raw second-half MSE (stream units):", "",
              "| series | steps | persistence | running mean | default |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['series']} | {r['n']} | {r['persistence'][0]:.4g} | {r['running mean'][0]:.4g} | {r[labels[0]][0]:.4g} |")
    lines += ["", "Daemon time per step is its CPU time (serving and learning threads) over the run divided by the steps; the "
              "baselines' is Python's process time per step."]
    with open(a.output, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
