"""The Python peer of the end-to-end load benchmark: a stateful stream server written the way a
user would write one — pyzmq for the sockets, ONNX Runtime for the model (one thread), a dict of
per-stream LSTM states, and one batched `session.run` for whatever each poll drains.

It speaks recurd's wire protocol v1 for one-step f32 messages (DESIGN §4) so the same load
generator (`recurd bench load`) drives both servers. No learning, no validation beyond the header.

usage: zmq_ort_server.py --onnx MODEL.onnx --input tcp://127.0.0.1:6555 --output tcp://127.0.0.1:6556
       (export the ONNX file with recurd_torch.py --model M --onnx MODEL.onnx)
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import zmq

# The header layouts come from the client package's codec (Clients/python), not from offsets
# written out here; the hot loop reads headers only, as a hand-written server would.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Clients" / "python" / "src"))
from recurd import wire  # noqa: E402

HEADER = wire.INPUT_HEADER
OUT = wire.OUTPUT_HEADER

p = argparse.ArgumentParser()
p.add_argument("--onnx", required=True)
p.add_argument("--input", required=True)
p.add_argument("--output", required=True)
p.add_argument("--max-batch", type=int, default=512)
a = p.parse_args()

so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
h_shape = session.get_inputs()[1].shape     # (layers, batch, hidden)
layers, hidden = h_shape[0], h_shape[2]

ctx = zmq.Context()
pull = ctx.socket(zmq.PULL)
pull.setsockopt(zmq.RCVHWM, 100_000)
pull.bind(a.input)
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 100_000)
pub.bind(a.output)
poller = zmq.Poller()
poller.register(pull, zmq.POLLIN)

states = {}   # key -> (h (layers, hidden), c (layers, hidden))
nan = np.float32(np.nan).tobytes()
zeros = np.zeros((layers, hidden), np.float32)

while True:
    if not poller.poll(100):
        continue
    drained = []
    while len(drained) < a.max_batch:
        try:
            drained.append(pull.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            break
    # A stream that sent twice in one drain is stepped in two rounds, in order.
    while drained:
        batch, later, seen = [], [], set()
        for frames in drained:
            if len(frames) != 2 or frames[0] in seen:
                (later if len(frames) == 2 else []).append(frames)
                continue
            seen.add(frames[0])
            batch.append(frames)
        drained = later
        keys, xs, meta = [], [], []
        for key, payload in batch:
            magic, version, kind, tkind, flags, xdim, ydim, _, steps, seq, ts = HEADER.unpack_from(payload)
            if magic != wire.INPUT_MAGIC or kind != wire.InputKind.FEATURES or steps != 1:
                continue
            if flags & 1:
                states.pop(key, None)
            keys.append(key)
            xs.append(np.frombuffer(payload, np.float32, xdim, HEADER.size))
            meta.append((seq, ts))
        if not keys:
            continue
        b = len(keys)
        h0 = np.empty((layers, b, hidden), np.float32)
        c0 = np.empty((layers, b, hidden), np.float32)
        for i, k in enumerate(keys):
            h, c = states.get(k, (zeros, zeros))
            h0[:, i] = h
            c0[:, i] = c
        y, hn, cn = session.run(None, {"x": np.stack(xs)[None], "h0": h0, "c0": c0})
        for i, k in enumerate(keys):
            states[k] = (hn[:, i].copy(), cn[:, i].copy())
            out = y[0, i]
            seq, ts = meta[i]
            pub.send_multipart([k, OUT.pack(wire.OUTPUT_MAGIC, wire.VERSION, wire.OutputKind.VECTOR, 0, out.shape[0], 0, 1, 0, seq, ts) + out.tobytes() + nan])
