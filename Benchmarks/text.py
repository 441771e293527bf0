"""Text benchmark (issue 8): the daemon's progressive bits/byte on text streams against bzip2 and xz.

A model that predicts each next byte is a compressor: the sum of −log2 of the probabilities it
published for the bytes that came is the size an arithmetic coder would reach with it. Each text
streams through a fresh `recurd serve` (no model file: the daemon creates its default text model
from the first message), in messages of 256 bytes sent as fast as the daemon takes them, and the
per-step progressive losses in its outputs are summed. Reported per text and setting: bits/byte
(the first byte has no loss and is not counted), the daemon's bytes/s over the run, and how many
the share of the stream's due windows it trained on (`trained_share`: learning keeping up).

Compared in the same run: `bzip2 -9` and `xz -9e` (compressed bits per byte of the whole file).

The bundled text (Data/text/shakespeare.txt) is what the bundled model was pre-trained on: its
figure with the pre-trained model is not out-of-sample, and the row without it is the fair one.
The other default texts are ones the project never trained on, found on any Debian machine with
Python: the GPL-3 text, IDLE's NEWS, perldiag, a Python docs module; pass your own with --texts.

usage: python Benchmarks/text.py [--recurd .build/release/recurd] [--texts a.txt ...] [--configs N]
Writes Benchmarks/results/text.md.
"""
import argparse
import glob
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Clients", "python", "src"))
from recurd import wire  # noqa: E402
from recurd.client import Control  # noqa: E402
from local_daemon import LocalDaemon  # noqa: E402


def default_texts():
    found = [os.path.join(ROOT, "Data", "text", "shakespeare.txt")]
    patterns = ["/usr/share/common-licenses/GPL-3",
                "/usr/lib/python3*/idlelib/NEWS.txt", os.path.join(sys.base_prefix, "lib", "python3*", "idlelib", "NEWS.txt"),
                "/usr/share/perl/5.*/pod/perldiag.pod", "/usr/lib/python3*/pydoc_data/topics.py",
                os.path.join(sys.base_prefix, "lib", "python3*", "pydoc_data", "topics.py")]
    seen = set()
    for p in patterns:
        hits = sorted(glob.glob(p))
        if hits:
            name = os.path.basename(hits[0])
            if name not in seen:
                seen.add(name)
                found.append(hits[0])
    return found


# The daemon settings compared; the first is the default.
CONFIGS = [
    ("default (pre-trained + context model)", []),
    ("pre-trained, no context model", ["--text-context-bytes", "0"]),
    ("fresh model + context model", ["--no-pretrained-text"]),
    ("fresh model alone (the old default)", ["--no-pretrained-text", "--text-context-bytes", "0"]),
]
CHUNK = 256


def compressed_bits(path, cmd):
    out = subprocess.run(cmd + [path], check=True, capture_output=True).stdout
    return 8 * len(out) / os.path.getsize(path)


def run_daemon(recurd, data, flags, extra=()):
    """Streams `data` through a fresh daemon; returns (bits/byte, bytes/s, trained share of windows due)."""
    with LocalDaemon(recurd, ["--top-k", "1", *flags, *extra]) as d:
        push, sub = d.push, d.sub
        # A probe stream (one byte, never learnt from) until the subscription is live.
        for attempt in range(300):
            push.send_multipart([b"probe", wire.encode_input(wire.InputMessage.build(text=b" ", seq=attempt, no_learn=True))])
            if sub.poll(100):
                break
        else:
            raise RuntimeError("the daemon never answered")
        while sub.poll(200):
            sub.recv_multipart()
        chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        total, counted, steps = 0.0, 0, 0
        start = time.perf_counter()
        sent = 0
        while steps < len(data):
            while sent < len(chunks) and sent - steps // CHUNK < 64:
                push.send_multipart([b"s", wire.encode_input(wire.InputMessage.build(text=chunks[sent], seq=sent * CHUNK))])
                sent += 1
            if not sub.poll(30_000):
                raise RuntimeError(f"no answer after {steps} steps")
            key, payload = sub.recv_multipart()
            if key != b"s":
                continue
            out = wire.decode_output(payload)
            steps += out.steps
            for v in out.losses:
                if not math.isnan(v):
                    total += float(v)
                    counted += 1
        seconds = time.perf_counter() - start
        time.sleep(0.5)  # let the trainer finish what is queued before reading its counters
        stats = Control(d.endpoints["ctl"], timeout=10).stats()
        return total / math.log(2) / counted, len(data) / seconds, stats.get("trained_share") or 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
    p.add_argument("--texts", nargs="*", default=None)
    p.add_argument("--configs", type=int, default=len(CONFIGS), help="how many daemon settings to run (the first is the default)")
    p.add_argument("--output", default=os.path.join(HERE, "results/text.md"))
    p.add_argument("--daemon-args", default="", help="more `recurd serve` flags for every run, e.g. '--model m.safetensors'")
    a = p.parse_args()
    texts = a.texts or default_texts()
    configs = CONFIGS[:a.configs]
    rows = []
    for path in texts:
        with open(path, "rb") as fh:
            data = fh.read()
        r = {"text": os.path.basename(path), "bytes": len(data), "bzip2 -9": compressed_bits(path, ["bzip2", "-9", "-c"]),
             "xz -9e": compressed_bits(path, ["xz", "-9e", "-c"])}
        for label, flags in configs:
            r[label] = run_daemon(a.recurd, data, flags, a.daemon_args.split())
        rows.append(r)
        print(r["text"], f"bzip2 {r['bzip2 -9']:.3f} xz {r['xz -9e']:.3f}",
              " ".join(f"[{k}] {v[0]:.3f} b/B {v[1] / 1e3:.0f}k B/s trained {v[2]:.0%}" for k, v in r.items() if isinstance(v, tuple)),
              flush=True)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = ["# Text benchmark", "",
             f"`python Benchmarks/text.py` on {cpu}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Each text streamed through a "
             f"fresh `recurd serve` with no model file, in messages of {CHUNK} bytes sent as fast as the daemon takes them. Cells: "
             "progressive bits/byte (what was published, scored on the byte that came); bzip2 and xz: compressed size of the whole "
             "file in bits per byte. Bold: at most bzip2's.", "",
             "| text | bytes | " + " | ".join(c[0] for c in configs) + " | bzip2 -9 | xz -9e |",
             "|---|---|" + "---|" * (len(configs) + 2)]
    for r in rows:
        cells = []
        for label, _ in configs:
            v = r[label][0]
            cells.append(f"**{v:.3f}**" if v <= r["bzip2 -9"] else f"{v:.3f}")
        lines.append(f"| {r['text']} | {r['bytes']} | " + " | ".join(cells) + f" | {r['bzip2 -9']:.3f} | {r['xz -9e']:.3f} |")
    lines += ["", "Daemon throughput (bytes/s over the run; the publishing client shares the machine) and the share of due windows "
              "it trained on (learning keeping up):", "",
              "| text | " + " | ".join(c[0] for c in configs) + " |", "|---|" + "---|" * len(configs)]
    for r in rows:
        lines.append(f"| {r['text']} | " + " | ".join(f"{r[c[0]][1] / 1e3:.0f}k B/s, {r[c[0]][2]:.0%}" for c in configs) + " |")
    lines += ["", "shakespeare.txt is the text the bundled model was pre-trained on (Models/pretrain_text.py): the pre-trained rows "
              "on it are not out-of-sample; the fresh-model rows are."]
    os.makedirs(os.path.dirname(a.output), exist_ok=True)
    with open(a.output, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
