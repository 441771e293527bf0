"""A long message and other streams (issue 9): one text message of 300,000 steps (≈ 300 KB) into a
daemon with a fresh byte model, and meanwhile one-step probes on another stream every 2 ms. Reports
the probes' latency (p50, p99, max), how the long message's 300,000 predictions came back (chunks,
time), and the daemon's peak resident memory (VmHWM). Writes Benchmarks/results/longmessage.md.

usage: python Benchmarks/longmessage.py [--recurd .build/release/recurd] [--steps 300000]
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Clients", "python", "src"))
from recurd import wire  # noqa: E402
p = argparse.ArgumentParser()
p.add_argument("--recurd", default=os.path.join(ROOT, ".build/release/recurd"))
p.add_argument("--steps", type=int, default=300_000)
p.add_argument("--output", default=os.path.join(HERE, "results/longmessage.md"))
a = p.parse_args()

work = tempfile.mkdtemp(prefix="recurd-long-")
ep = {k: f"ipc://{work}/{k}" for k in ["in", "out", "ctl"]}
server = subprocess.Popen([a.recurd, "serve", "--input", ep["in"], "--input-socket", "pull", "--output", ep["out"], "--control", ep["ctl"],
                           "--http", "", "--log-level", "warning"], stderr=subprocess.DEVNULL)
time.sleep(1)
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.connect(ep["in"])
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.RCVHWM, 0)
sub.connect(ep["out"])


def text(seq, data):
    return wire.encode_input(wire.InputMessage.build(text=data, seq=seq))


# The first byte creates the model (a byte LSTM); wait for its prediction so the subscription is live.
for i in range(200):
    push.send_multipart([b"warm", text(i, b" ")])
    if sub.poll(50):
        sub.recv_multipart()
        break
while sub.poll(100):
    sub.recv_multipart()


def hwm():
    for line in open(f"/proc/{server.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


base = hwm()
book = bytes(97 + i % 26 for i in range(a.steps))
sent = {}
probes = 2000


def probe_thread():
    s = ctx.socket(zmq.PUSH)
    s.connect(ep["in"])
    for i in range(probes):
        sent[i] = time.perf_counter()
        s.send_multipart([b"probe", text(i, b"x")])
        time.sleep(0.002)


start = time.perf_counter()
push.send_multipart([b"book", text(0, book)])
t = threading.Thread(target=probe_thread)
t.start()
latencies, chunks, steps, done_at = [], 0, 0, None
while len(latencies) < probes or done_at is None:
    if not sub.poll(10_000):
        break
    key, payload = sub.recv_multipart()
    if key == b"book":
        chunks += 1
        out = wire.decode_output(payload)
        steps += out.steps
        if not out.more:
            done_at = time.perf_counter()
    elif key == b"probe":
        seq = wire.decode_output(payload).seq
        latencies.append(time.perf_counter() - sent[seq])
t.join()
peak = hwm()
server.terminate()
server.wait(timeout=60)
latencies.sort()
pct = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e3
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
lines = [
    "# A long message among short ones",
    "",
    f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; release build; daemon and client separate processes (ipc).",
    f"Model: created from the first byte (LSTM 64, embedding 16, softmax over 256; learning on), default settings (max-output-bytes 64 KiB).",
    "",
    f"One text message of {a.steps:,} steps; meanwhile {probes} one-step probes on another stream, one every 2 ms.",
    "",
    "| | measured | target |",
    "|---|---|---|",
    f"| probe latency p50 / p99 / max | {pct(0.5):.2f} / **{pct(0.99):.2f}** / {latencies[-1] * 1e3:.2f} ms | p99 ≤ 20 ms |",
    f"| the long message's predictions | {steps:,} steps in {chunks:,} chunks, all back after {done_at - start:.1f} s | all, in chunks |",
    f"| daemon peak RSS (VmHWM) | **{peak / 2**20:.0f} MB** (before the message: {base / 2**20:.0f} MB) | ≤ 400 MB |",
    "",
    f"Probes answered: {len(latencies)} of {probes}.",
]
text_out = "\n".join(lines) + "\n"
os.makedirs(os.path.dirname(a.output), exist_ok=True)
open(a.output, "w").write(text_out)
print(text_out)
