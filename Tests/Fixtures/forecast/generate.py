"""Reference vectors for the forecast combiner and the anomaly score (Sources/RecurdForecast),
made by the independent pure-Python references beside this script (anomaly_ref.py,
combiner_ref.py; Python floats, no numpy).

For each bundled NAB series (Data/nab), every step t:
  network_t   a deterministic stand-in for the network's forecast of x_{t+1}:
              x_t + 0.3 (x_t - x_{t-1}) (NaN at t = 0, which the combiner counts as persistence)
  published_t Combiner(network=True).step(x_t, network_t): the forecast of x_{t+1} to publish
  score_t     AnomalyScorer.update(x_t, published_{t-1}) (NaN at t = 0)
Written with repr(), so every double round-trips exactly.

<series>_glitches.csv: the same for ec2_cpu_utilization_825cc2 with sensor glitches written over
some readings (GLITCHES: a lone 1e9, a run of three -9999, a lone -9999, a lone 0), so that the
combiner's outlier gate holds, drops, confirms and replays values.

usage: python3 generate.py   (from this folder; writes <series>.csv)
"""
import csv
import math
import os

import anomaly_ref
import combiner_ref

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "Data", "nab")
SERIES = ["ec2_cpu_utilization_825cc2", "art_daily_jumpsup", "ec2_cpu_utilization_825cc2_glitches"]
GLITCHES = {1000: 1e9, 2000: -9999.0, 2001: -9999.0, 2002: -9999.0, 2500: -9999.0, 3000: 0.0}

for name in SERIES:
    source = name.removesuffix("_glitches")
    with open(os.path.join(DATA, source + ".csv")) as fh:
        xs = [float(r["value"]) for r in csv.DictReader(fh)]
    if name != source:
        xs = [GLITCHES.get(t, x) for t, x in enumerate(xs)]
    comb = combiner_ref.Combiner(network=True)
    scorer = anomaly_ref.AnomalyScorer()
    previous = float("nan")
    with open(os.path.join(HERE, name + ".csv"), "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["t", "value", "network", "published", "score"])
        for t, x in enumerate(xs):
            net = float("nan") if t == 0 else x + 0.3 * (x - xs[t - 1])
            score = scorer.update(x, previous)
            published = comb.step(x, None if math.isnan(net) else net)
            w.writerow([t, repr(x), repr(net), repr(published), repr(score)])
            previous = published
    print("wrote", name + ".csv", len(xs), "steps")
