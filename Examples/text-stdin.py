#!/usr/bin/env python3
"""Pipe text from stdin into recurd and print the most likely next bytes after each line.

Each line (with its newline) goes to the daemon as one text message, one step per byte. For a
byte-level model with a softmax head the daemon predicts the next byte at every step; with
`--top-k K` it publishes only the K most probable bytes (top-k output), which is what this prints
after the last byte of each line. Outputs split over several messages (the MORE flag) are
gathered by seq.

    # against a running daemon (`recurd serve`, in another terminal; with no --model a byte model is
    # created from the first text and learns as the text flows):
    head -c 20000 Data/text/shakespeare.txt | python Examples/text-stdin.py --quiet
    echo "To be, or not to b" | python Examples/text-stdin.py
    # or start one for this run:
    head -c 20000 Data/text/shakespeare.txt | python Examples/text-stdin.py --serve --recurd .build/release/recurd

Needs numpy, pyzmq and the recurd package (pip install ./Clients/python).
"""
import argparse
import math
import os
import sys
import time

try:
    import numpy as np
    import zmq
except ImportError as e:
    sys.exit(f"Error: {e.name} is not installed: pip install ./Clients/python (the recurd package; it brings numpy and pyzmq)")

WAIT = 10.0  # seconds to wait for a message's predictions


def show(b: int) -> str:
    c = chr(b)
    return repr(c)[1:-1] if c.isprintable() and b < 128 else f"\\x{b:02x}"


def why_no_prediction(args, ctl, before):
    """Asks the daemon's control socket why nothing came back; returns the message to print."""
    from recurd import ControlTimeout
    restart = "recurd serve" + (" --input-socket pull" if args.socket == "push" else "")
    if ctl is None:
        return f"no prediction arrived on {args.output} within {WAIT:g} s. Is `{restart}` running with these endpoints?"
    try:
        stats, model = ctl.stats(), ctl.model()
    except ControlTimeout:
        return (f"no daemon answers at {args.control}. Start one in another terminal:\n    {restart}\n"
                "or let this script start its own: --serve --recurd PATH/TO/recurd")
    rejected = {r: n - before["rejected"].get(r, 0) for r, n in stats["rejected"].items() if n > before["rejected"].get(r, 0)}
    if rejected:
        what = ", ".join(f"{r} ×{n}" for r, n in rejected.items())
        takes = (f"{model.get('input_size')} feature(s) per step" if model.get("input") == "features"
                 else f"{model.get('input')} (vocabulary {model.get('vocabulary', '?')})")
        return (f"the daemon refused the text ({what}): its model takes {takes}. Text needs a byte model: restart "
                "the daemon with no --model and send text first (it makes its model from the first stream), or give "
                "it one: recurd init --cell lstm --hidden 64 --vocab 256 --embed 16 --output-size 256 --head softmax "
                "-o bytes.safetensors && recurd serve --model bytes.safetensors")
    if stats["messages"] == before["messages"]:
        return (f"the daemon (control {args.control}) received nothing on {args.input}. "
                + ("--socket push needs a daemon started with `recurd serve --input-socket pull`; "
                   "a daemon with the default SUB input takes --socket pub (this script's default)."
                   if args.socket == "push" else
                   "If it runs with --input-socket pull, pass --socket push; check --input."))
    return (f"the daemon took {stats['messages'] - before['messages']} messages but no prediction reached "
            f"{args.output}: check --output (and the daemon's --output-prefix, which this script does not strip).")


def main():
    ap = argparse.ArgumentParser(
        description="Pipe text into recurd and print the most likely next bytes after each line. Start `recurd serve` "
                    "first (defaults: input tcp://127.0.0.1:5555, output :5556, control :5557), or pass --serve.",
        epilog='example: echo "To be, or not to b" | python Examples/text-stdin.py')
    ap.add_argument("--stream", default="stdin", help="stream key")
    ap.add_argument("--top-k", type=int, default=5, help="bytes to print (and the daemon's --top-k with --serve)")
    ap.add_argument("--input", default="tcp://127.0.0.1:5555", help="the daemon's input endpoint")
    ap.add_argument("--output", default="tcp://127.0.0.1:5556", help="the daemon's output endpoint")
    ap.add_argument("--control", default="tcp://127.0.0.1:5557", help="the daemon's control endpoint ('' if it has none)")
    ap.add_argument("--socket", choices=("pub", "push"), default="pub",
                    help="pub (the daemon's default SUB input) or push (recurd serve --input-socket pull; never drops)")
    ap.add_argument("--serve", action="store_true", help="start recurd serve (ipc endpoints in a temporary folder)")
    ap.add_argument("--recurd", default=os.environ.get("RECURD_BIN"), help="the recurd binary for --serve (default $RECURD_BIN or PATH)")
    ap.add_argument("--model", help="byte model for --serve (default: created from the first text, learning online)")
    ap.add_argument("--no-learn", action="store_true", help="with --serve: do not learn")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    args = ap.parse_args()

    try:
        from recurd import Control, ControlTimeout, Publisher, Subscriber
    except ImportError:
        sys.exit("Error: the recurd Python package is not installed: pip install ./Clients/python (from the recurd checkout)")

    daemon, ctl, before = None, None, None
    if args.serve:
        from recurd.serve import Serve
        # --sync-learning: updates happen between the steps (deterministic; the background trainer
        # runs at SCHED_IDLE until it is far behind and may get little CPU on a busy machine).
        extra = ["--top-k", str(args.top_k)] + (["--no-learn"] if args.no_learn else ["--sync-learning"])
        try:
            daemon = Serve(args.recurd, model=args.model, args=extra)
        except (FileNotFoundError, RuntimeError, TimeoutError) as e:
            sys.exit(f"Error: {e}")
        pub, sub, ctl = daemon.connect(probe={"text": b" "})
        args.input, args.output, args.control, args.socket = daemon.input, daemon.output, daemon.control_endpoint, "push"
    else:
        if args.control:
            ctl = Control(args.control, timeout=2)
            try:
                ctl.stats()
            except ControlTimeout:
                sys.exit("Error: " + why_no_prediction(args, ctl, None))
        # A PUSH blocks while no PULL is there; time out rather than hang (a SUB input never takes it).
        pub = Publisher(args.input, args.socket, send_timeout=WAIT if args.socket == "push" else None)
        sub = Subscriber(args.output, args.stream)
        if args.socket == "pub" and not pub.wait_ready(5):
            sys.exit(f"Error: no daemon subscribed at {args.input} within 5 s. Start `recurd serve` there; "
                     "if the daemon runs with --input-socket pull, pass --socket push.")
        time.sleep(0.3)  # let the subscription reach the daemon's PUB
    if ctl is not None:
        before = ctl.stats()
    if sys.stdin.isatty():
        print("type lines of text (Ctrl-D ends); or pipe a file in: python Examples/text-stdin.py < FILE", file=sys.stderr)

    key = args.stream
    total_loss, scored, steps = 0.0, 0, 0
    first = True
    try:
        for line in sys.stdin.buffer:
            seq = pub.send(key, text=line, reset=first)
            first = False
            end = seq + len(line)
            last = None
            while True:  # gather this message's outputs (one, or several with MORE)
                p = sub.recv(WAIT)
                if p is None:
                    sys.exit("Error: " + why_no_prediction(args, ctl, before)
                             + (f"\ndaemon log:\n{daemon.log}" if daemon else ""))
                if p.key != key:
                    continue
                ok = ~np.isnan(p.loss)
                total_loss += float(p.loss[ok].sum())
                scored += int(ok.sum())
                last = p
                if p.seq + p.steps >= end and not p.more:
                    break
            steps += len(line)
            if args.quiet:
                continue
            if last.top is not None:
                pairs = last.top_pairs(-1)[: args.top_k]
            else:  # a daemon without --top-k publishes all 256 probabilities
                probs = last.y[-1]
                order = np.argsort(-probs)[: args.top_k]
                pairs = [(int(i), float(probs[i])) for i in order]
            tail = line.decode("utf-8", "replace").rstrip("\n")[-30:]
            print(f"{tail!r:>34} → " + "  ".join(f"'{show(i)}' {p:.3f}" for i, p in pairs), flush=True)
    except zmq.Again:  # --socket push and nothing takes the messages
        sys.exit("Error: " + why_no_prediction(args, ctl, before))
    except KeyboardInterrupt:
        print()
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
    if scored:
        nats = total_loss / scored
        print(f"{steps} bytes; progressive loss {nats:.3f} nats = {nats / math.log(2):.3f} bits per byte")
    elif steps:
        print(f"{steps} bytes; nothing scored yet (a stream's first byte has no earlier prediction)")
    if after is not None and before is not None and after.get("learning"):
        updates = after["updates"] - before["updates"]
        due = after["windows_due"] - before["windows_due"]
        print(f"learning: {updates} updates so far for {due} windows due (model version {after['model_version']})")
        if due >= 50 and updates < due / 4 and not args.serve:
            # One fast stream: the background trainer averages many of its windows into one update.
            print("  the daemon's background trainer averages up to --train-batch windows per update and runs at idle "
                  "priority. Run the daemon with --sync-learning (as --serve does) to learn from each window in order.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
