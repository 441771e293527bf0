#!/usr/bin/env python3
"""Pipe text from stdin into recurd and print the most likely next bytes after each line.

Each line (with its newline) goes to the daemon as one text message, one step per byte. For a
byte-level model with a softmax head the daemon predicts the next byte at every step; with
`--top-k K` it publishes only the K most probable bytes (top-k output), which is what this prints
after the last byte of each line. Outputs split over several messages (the MORE flag) are
gathered by seq.

    # a running daemon with a byte model (recurd serve --model bytes.safetensors --top-k 5 --input-socket pull):
    echo "To be, or not to b" | python Examples/text-stdin.py
    # or start one: a byte model is created from the first text and learns as the text flows
    head -c 20000 Data/text/shakespeare.txt | python Examples/text-stdin.py --serve --recurd .build/release/recurd

Needs numpy, pyzmq and the recurd package (pip install -e Clients/python).
"""
import argparse
import math
import os
import sys
import time

import numpy as np


def show(b: int) -> str:
    c = chr(b)
    return repr(c)[1:-1] if c.isprintable() and b < 128 else f"\\x{b:02x}"


def main():
    ap = argparse.ArgumentParser(description="Pipe text into recurd and print the most likely next bytes.")
    ap.add_argument("--stream", default="stdin", help="stream key")
    ap.add_argument("--top-k", type=int, default=5, help="bytes to print (and the daemon's --top-k with --serve)")
    ap.add_argument("--input", default="tcp://127.0.0.1:5555")
    ap.add_argument("--output", default="tcp://127.0.0.1:5556")
    ap.add_argument("--socket", choices=("push", "pub"), default="push")
    ap.add_argument("--serve", action="store_true", help="start recurd serve (ipc endpoints in a temporary folder)")
    ap.add_argument("--recurd", default=os.environ.get("RECURD_BIN"), help="the recurd binary for --serve")
    ap.add_argument("--model", help="byte model for --serve (default: created from the first text, learning online)")
    ap.add_argument("--no-learn", action="store_true", help="with --serve: do not learn")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    args = ap.parse_args()

    from recurd import Publisher, Subscriber

    daemon = None
    if args.serve:
        from recurd.serve import Serve
        # --sync-learning: updates happen between the steps (deterministic; the background trainer
        # runs at SCHED_IDLE and may get no CPU on a busy machine).
        extra = ["--top-k", str(args.top_k)] + (["--no-learn"] if args.no_learn else ["--sync-learning"])
        daemon = Serve(args.recurd, model=args.model, args=extra)
        pub, sub, _ = daemon.connect(probe={"text": b" "})
    else:
        pub = Publisher(args.input, args.socket)
        sub = Subscriber(args.output, args.stream)
        if args.socket == "pub" and not pub.wait_ready(5):
            sys.exit(f"no daemon subscribed at {args.input}")
        time.sleep(0.3)

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
                p = sub.recv(10)
                if p is None:
                    sys.exit("no prediction within 10 s" + (f"; daemon log:\n{daemon.log}" if daemon else ""))
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
            print(f"{tail!r:>34} → " + "  ".join(f"'{show(i)}' {p:.3f}" for i, p in pairs))
    finally:
        pub.close()
        sub.close()
        if daemon:
            daemon.stop()
    if scored:
        nats = total_loss / scored
        print(f"{steps} bytes; progressive loss {nats:.3f} nats = {nats / math.log(2):.3f} bits per byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
