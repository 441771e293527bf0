#!/usr/bin/env python3
"""Replay a CSV sensor log as a live stream into recurd and print its forecasts as they come.

Each row is one step (the numeric columns, or --columns). With next-step targets (the daemon's
default) the prediction published after step t is the forecast of step t+1, and the loss that
arrives with step t+1 scores that forecast (in squared standard deviations when the daemon
standardises). At the end: the progressive loss against the persistence forecast (next = last).

    # against a running daemon (`recurd serve` with its defaults, in another terminal):
    python Examples/sensor-replay.py Data/nab/machine_temperature_system_failure.csv
    # or start one for the replay (a model is created from the first step, and learns online):
    python Examples/sensor-replay.py Data/nab/nyc_taxi.csv --serve --recurd .build/release/recurd --limit 3000

Needs numpy, pyzmq and the recurd package (pip install ./Clients/python).
"""
import argparse
import csv
import os
import sys
import time

try:
    import numpy as np
    import zmq
except ImportError as e:
    sys.exit(f"Error: {e.name} is not installed: pip install ./Clients/python (the recurd package; it brings numpy and pyzmq)")

STALL = 10.0  # seconds without a prediction before giving up


def numeric(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def read_csv(path, columns=None):
    """(column names, steps × columns float32). Errors name the line and column."""
    try:
        with open(path, newline="") as fh:
            rows = [(n, r) for n, r in enumerate(csv.reader(fh), 1) if r]
    except OSError as e:
        sys.exit(f"Error: cannot read {path}: {e.strerror}")
    if not rows:
        sys.exit(f"Error: {path} is empty")
    header = None
    if not all(numeric(v) for v in rows[0][1]):
        header, rows = rows[0][1], rows[1:]
    if not rows:
        sys.exit(f"Error: {path} has a header and no data rows")
    names = header or [f"c{i}" for i in range(len(rows[0][1]))]
    if columns:
        idx = []
        for c in columns.split(","):
            c = c.strip()
            if c in names:
                idx.append(names.index(c))
            elif c.isdigit() and int(c) < len(names):
                idx.append(int(c))
            else:
                sys.exit(f"Error: {path} has no column {c!r}; its columns are "
                         + ", ".join(f"{i}:{n}" for i, n in enumerate(names)))
    else:
        idx = [i for i, v in enumerate(rows[0][1]) if numeric(v)]
        if not idx:
            sys.exit(f"Error: {path}: no numeric column in the first data row (line {rows[0][0]}); choose some with --columns")
    data = np.empty((len(rows), len(idx)), np.float32)
    for j, (line, r) in enumerate(rows):
        for k, i in enumerate(idx):
            try:
                data[j, k] = float(r[i])
            except (ValueError, IndexError):
                sys.exit(f"Error: {path}, line {line}, column {names[i]!r}: "
                         f"{'missing' if i >= len(r) else repr(r[i]) + ' is not a number'}")
    if not np.isfinite(data).all():
        line = rows[int(np.argwhere(~np.isfinite(data))[0][0])][0]
        sys.exit(f"Error: {path}, line {line}: NaN or infinite values are refused by the daemon")
    return [names[i] for i in idx], data


def why_no_prediction(args, ctl, before):
    """Asks the daemon's control socket why nothing came back; returns the message to print."""
    from recurd import ControlTimeout
    restart = "recurd serve" + (" --input-socket pull" if args.socket == "push" else "")
    if ctl is None:
        return (f"no prediction arrived on {args.output}. Is `{restart}` running with --input {args.input} "
                f"and --output {args.output}?")
    try:
        stats, model = ctl.stats(), ctl.model()
    except ControlTimeout:
        return (f"no daemon answers at {args.control}. Start one in another terminal:\n    {restart}\n"
                "or let this script start its own: --serve --recurd PATH/TO/recurd")
    rejected = {r: n - before["rejected"].get(r, 0) for r, n in stats["rejected"].items() if n > before["rejected"].get(r, 0)}
    if rejected:
        what = ", ".join(f"{r} ×{n}" for r, n in rejected.items())
        if model.get("input") == "features":
            fits = (f"its model takes {model.get('input_size')} feature(s) per step and the file gives {args.width}. "
                    "Choose columns with --columns, or")
        else:
            fits = (f"its model reads text or token ids (vocabulary {model.get('vocabulary', '?')}), not features. "
                    "Use Examples/text-stdin.py for text, or")
        return (f"the daemon refused the messages ({what}): {fits} start the daemon with a model that fits "
                "(or with no --model: one is created from the first stream).")
    if stats["messages"] == before["messages"]:
        return (f"the daemon (control {args.control}) received nothing on {args.input}. "
                + ("--socket push needs a daemon started with `recurd serve --input-socket pull`; "
                   "a daemon with the default SUB input takes --socket pub (this script's default)."
                   if args.socket == "push" else
                   "If it was started with --input-socket pull, pass --socket push; check --input."))
    return (f"the daemon took {stats['messages'] - before['messages']} messages but no prediction reached "
            f"{args.output}: check --output (and the daemon's --output-prefix, which this script does not strip).")


def main():
    ap = argparse.ArgumentParser(
        description="Replay a CSV sensor log into recurd and print the forecasts. Start `recurd serve` first "
                    "(defaults: input tcp://127.0.0.1:5555, output :5556, control :5557), or pass --serve.",
        epilog="example: python Examples/sensor-replay.py Data/nab/machine_temperature_system_failure.csv")
    ap.add_argument("csv", help="CSV file, one row per step; a header row is detected")
    ap.add_argument("--stream", default=None, help="stream key (default: the file name)")
    ap.add_argument("--columns", help="comma-separated column names or 0-based indices (default: every numeric column)")
    ap.add_argument("--rate", type=float, default=0, help="steps per second (default: as fast as the daemon answers)")
    ap.add_argument("--limit", type=int, default=0, help="replay at most this many rows")
    ap.add_argument("--every", type=int, default=0, help="print every Nth step (default: about 40 lines)")
    ap.add_argument("--input", default="tcp://127.0.0.1:5555", help="the daemon's input endpoint")
    ap.add_argument("--output", default="tcp://127.0.0.1:5556", help="the daemon's output endpoint")
    ap.add_argument("--control", default="tcp://127.0.0.1:5557", help="the daemon's control endpoint ('' if it has none)")
    ap.add_argument("--socket", choices=("pub", "push"), default="pub",
                    help="pub (the daemon's default SUB input) or push (recurd serve --input-socket pull; never drops)")
    ap.add_argument("--serve", action="store_true", help="start recurd serve for the replay (ipc endpoints in a temporary folder)")
    ap.add_argument("--recurd", default=os.environ.get("RECURD_BIN"), help="the recurd binary for --serve (default $RECURD_BIN or PATH)")
    ap.add_argument("--model", help="model file for --serve (default: created from the first step)")
    args = ap.parse_args()

    try:
        from recurd import Control, ControlTimeout, Publisher, Subscriber
    except ImportError:
        sys.exit("Error: the recurd Python package is not installed: pip install ./Clients/python (from the recurd checkout)")

    names, data = read_csv(args.csv, args.columns)
    if args.limit:
        data = data[: args.limit]
    args.width = data.shape[1]
    key = args.stream or os.path.splitext(os.path.basename(args.csv))[0]
    every = args.every or max(1, len(data) // 40)

    daemon, ctl, before = None, None, None
    if args.serve:
        from recurd.serve import Serve
        try:
            # --sync-learning: updates happen between the steps (deterministic; the background trainer
            # runs at SCHED_IDLE until it is far behind and may get little CPU on a busy machine).
            daemon = Serve(args.recurd, model=args.model, args=["--sync-learning"])
        except (FileNotFoundError, RuntimeError, TimeoutError) as e:
            sys.exit(f"Error: {e}")
        pub, sub, ctl = daemon.connect(probe={"x": np.zeros(data.shape[1], np.float32)})
        args.input, args.output, args.control, args.socket = daemon.input, daemon.output, daemon.control_endpoint, "push"
    else:
        if args.control:
            ctl = Control(args.control, timeout=2)
            try:
                ctl.stats()
            except ControlTimeout:
                sys.exit("Error: " + why_no_prediction(args, ctl, None))
        # A PUSH blocks while no PULL is there; time out rather than hang (a SUB input never takes it).
        pub = Publisher(args.input, args.socket, send_timeout=STALL if args.socket == "push" else None)
        sub = Subscriber(args.output, key)
        if args.socket == "pub" and not pub.wait_ready(5):
            sys.exit(f"Error: no daemon subscribed at {args.input} within 5 s. Start `recurd serve` there; "
                     "if the daemon runs with --input-socket pull, pass --socket push.")
        time.sleep(0.3)  # let the subscription reach the daemon's PUB
    if ctl is not None:
        before = ctl.stats()
    print(f"{key}: {len(data)} steps of {', '.join(names)}")

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

    def wait_for(p_timeout):
        """A prediction, or exits with the reason when none comes within STALL seconds."""
        p = sub.recv(p_timeout)
        if p is None and p_timeout >= STALL:
            if received == 0:
                sys.exit("Error: " + why_no_prediction(args, ctl, before))
            sys.exit(f"Error: no prediction for {STALL:g} s after step {received - 1} of {len(data)} "
                     "(the daemon stopped, or predictions were dropped).")
        return p

    try:
        for t, row in enumerate(data):
            pub.send(key, row, reset=(t == 0))
            if t == 0:
                take(wait_for(STALL))  # the first answer shows that the daemon takes this stream
                continue
            if args.rate:
                time.sleep(max(0.0, start + (t + 1) / args.rate - time.monotonic()))
            while True:
                p = sub.recv(0) if args.rate or t - received < 256 else wait_for(STALL)
                if p is None:
                    break
                take(p)
        while received < len(data):
            take(wait_for(STALL))
    except zmq.Again:  # --socket push and nothing takes the messages
        sys.exit("Error: " + why_no_prediction(args, ctl, before))
    except KeyboardInterrupt:
        print(f"\ninterrupted after step {received}")
    finally:
        after = None
        if ctl is not None:
            try:
                after = ctl.stats()
            except ControlTimeout:
                pass
            ctl.close()
        pub.close()
        sub.close()
        if daemon:
            daemon.stop()

    scored = ~np.isnan(losses)
    print(f"\npredictions received: {received} of {len(data)} in {time.monotonic() - start:.1f} s")
    if scored.any():
        mean = float(np.nanmean(losses))
        half = len(losses) // 2
        print(f"progressive loss (as the daemon scores it): all {mean:.4g}, second half {np.nanmean(losses[half:]):.4g}")
        # The network's forecasts and persistence, in the data's own units.
        err = np.mean((forecasts[:-1] - data[1:]) ** 2, axis=1)
        pers = np.mean((data[:-1] - data[1:]) ** 2, axis=1)
        ok = ~np.isnan(err)
        print(f"mean squared error of the forecasts {np.mean(err[ok]):.4g} vs persistence {np.mean(pers[ok]):.4g} (data units)")
    if after is not None and before is not None and after.get("learning"):
        updates = after["updates"] - before["updates"]
        due = after["windows_due"] - before["windows_due"]
        print(f"learning: {updates} updates so far for {due} windows due (model version {after['model_version']})")
        if due >= 50 and updates < due / 4 and not args.serve:
            # One fast stream: the background trainer averages many of its windows into one update.
            print("  the daemon's background trainer averages up to --train-batch windows per update and runs at idle "
                  "priority. Replay with --rate 2000, or run the daemon with --sync-learning, to learn from each window in order.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
