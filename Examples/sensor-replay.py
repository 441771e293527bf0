#!/usr/bin/env python3
"""Replay a CSV sensor log as a live stream into recurd and print its forecasts as they come.

Each row is one step (the numeric columns, or --columns). With next-step targets (the daemon's
default) the prediction published after step t is the forecast of step t+1, and the loss that
arrives with step t+1 scores that forecast (in squared standard deviations when the daemon
standardises). At the end: the progressive loss against the persistence forecast (next = last).

    # against a running daemon (recurd serve --input-socket pull …):
    python Examples/sensor-replay.py Data/nab/machine_temperature_system_failure.csv --rate 200
    # or start one for the replay (a model is created from the first step, and learns online):
    python Examples/sensor-replay.py Data/nab/nyc_taxi.csv --serve --recurd .build/release/recurd --limit 3000

Needs numpy, pyzmq and the recurd package (pip install -e Clients/python).
"""
import argparse
import csv
import os
import sys
import time

import numpy as np


def read_csv(path, columns=None):
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    def numeric(v):
        try:
            float(v)
            return True
        except ValueError:
            return False
    header = None
    if rows and not all(numeric(v) for v in rows[0]):
        header, rows = rows[0], rows[1:]
    names = header or [f"c{i}" for i in range(len(rows[0]))]
    if columns:
        idx = [names.index(c) if c in names else int(c) for c in columns.split(",")]
    else:
        idx = [i for i, v in enumerate(rows[0]) if numeric(v)]
    data = np.array([[float(r[i]) for i in idx] for r in rows], np.float32)
    return [names[i] for i in idx], data


def main():
    ap = argparse.ArgumentParser(description="Replay a CSV sensor log into recurd and print the forecasts.")
    ap.add_argument("csv")
    ap.add_argument("--stream", default=None, help="stream key (default: the file name)")
    ap.add_argument("--columns", help="comma-separated column names or indices (default: every numeric column)")
    ap.add_argument("--rate", type=float, default=0, help="steps per second (default: as fast as the daemon answers)")
    ap.add_argument("--limit", type=int, default=0, help="replay at most this many rows")
    ap.add_argument("--every", type=int, default=0, help="print every Nth step (default: about 40 lines)")
    ap.add_argument("--input", default="tcp://127.0.0.1:5555", help="the daemon's input endpoint")
    ap.add_argument("--output", default="tcp://127.0.0.1:5556", help="the daemon's output endpoint")
    ap.add_argument("--socket", choices=("push", "pub"), default="push", help="push (daemon --input-socket pull; lossless) or pub")
    ap.add_argument("--serve", action="store_true", help="start recurd serve for the replay (ipc endpoints in a temporary folder)")
    ap.add_argument("--recurd", default=os.environ.get("RECURD_BIN"), help="the recurd binary for --serve (default $RECURD_BIN or PATH)")
    ap.add_argument("--model", help="model file for --serve (default: created from the first step)")
    args = ap.parse_args()

    from recurd import Publisher, Subscriber

    names, data = read_csv(args.csv, args.columns)
    if args.limit:
        data = data[: args.limit]
    key = args.stream or os.path.splitext(os.path.basename(args.csv))[0]
    every = args.every or max(1, len(data) // 40)
    print(f"{key}: {len(data)} steps of {', '.join(names)}")

    daemon = None
    if args.serve:
        from recurd.serve import Serve
        # --sync-learning: updates happen between the steps (deterministic; the background trainer
        # runs at SCHED_IDLE and may get no CPU on a busy machine).
        daemon = Serve(args.recurd, model=args.model, args=["--sync-learning"])
        pub, sub, _ = daemon.connect(probe={"x": np.zeros(data.shape[1], np.float32)})
    else:
        pub = Publisher(args.input, args.socket)
        sub = Subscriber(args.output, key)
        if args.socket == "pub" and not pub.wait_ready(5):
            sys.exit(f"no daemon subscribed at {args.input}")
        time.sleep(0.3)  # let the subscription reach the daemon's PUB

    forecasts = np.full_like(data, np.nan)
    losses = np.full(len(data), np.nan)
    print(f"{'step':>7} {'actual':>24} {'forecast for next':>24} {'loss':>10}")
    received, start = 0, time.monotonic()

    def take(p):
        nonlocal received
        if p.key != key:
            return
        for i in range(p.steps):
            t = p.seq + i
            if t < len(data):
                forecasts[t] = p.y[i]
                losses[t] = p.loss[i]
                if t % every == 0 or t == len(data) - 1:
                    fmt = lambda a: " ".join(f"{v:11.4g}" for v in a)
                    print(f"{t:7d} {fmt(data[t]):>24} {fmt(p.y[i]):>24} {p.loss[i]:10.4g}")
        received = max(received, p.seq + p.steps)

    try:
        for t, row in enumerate(data):
            pub.send(key, row, reset=(t == 0))
            if args.rate:
                time.sleep(max(0.0, start + (t + 1) / args.rate - time.monotonic()))
            while True:
                p = sub.recv(0 if args.rate or t - received < 256 else 1.0)
                if p is None:
                    break
                take(p)
        deadline = time.monotonic() + 10
        while received < len(data) and time.monotonic() < deadline:
            p = sub.recv(0.5)
            if p is not None:
                take(p)
    finally:
        pub.close()
        sub.close()
        if daemon:
            daemon.stop()

    scored = ~np.isnan(losses)
    print(f"\npredictions received: {received} of {len(data)}")
    if scored.any():
        mean = float(np.nanmean(losses))
        half = len(losses) // 2
        print(f"progressive loss (as the daemon scores it): all {mean:.4g}, second half {np.nanmean(losses[half:]):.4g}")
        # The network's forecasts and persistence, in the data's own units.
        err = np.mean((forecasts[:-1] - data[1:]) ** 2, axis=1)
        pers = np.mean((data[:-1] - data[1:]) ** 2, axis=1)
        ok = ~np.isnan(err)
        print(f"mean squared error of the forecasts {np.mean(err[ok]):.4g} vs persistence {np.mean(pers[ok]):.4g} (data units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
