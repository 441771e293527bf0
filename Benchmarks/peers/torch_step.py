"""PyTorch peer for `recurd bench step`: a recurd model file loaded into nn.LSTM(num_layers=L) +
nn.Linear, stepped one time step at a time for B streams, the state fed back, one thread.

Timed, per step: model(x_t, h, c) under torch.inference_mode() — nn.LSTM over a (1, B, In)
input with the previous (h, c), then the head. Not timed: loading, input generation (a ring of
64 pre-generated steps), warm-up. The (h, c) of all B streams stay in torch tensors between steps
(no per-stream gather/scatter, which recurd's loop does do).

By default PyTorch runs nn.LSTM on CPU through oneDNN (aten::mkldnn_rnn_layer), which at batch 1
costs far more than its own ATen path; --onednn off sets torch.backends.mkldnn.enabled = False
so that the comparison can use whichever is faster.

usage: torch_step.py --model FILE --batch B --steps N --warmup W [--onednn on|off]
Prints one JSON line with the keys of `recurd bench step` ("impl": "pytorch").
"""
import argparse
import time

import numpy as np
import torch

import recurd_torch
import steptiming


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--onednn", choices=["on", "off"], default="on",
                   help="off: torch.backends.mkldnn.enabled = False (default: PyTorch's default, on)")
    a = p.parse_args()
    recurd_torch.one_thread()
    torch.backends.mkldnn.enabled = a.onednn == "on"
    m = recurd_torch.load(a.model)
    ring = torch.from_numpy(steptiming.ring_inputs(np.random.default_rng(7), a.batch, m.n_in))
    xs = [ring[i] for i in range(ring.shape[0])]  # (1, B, In) views, made before timing
    h = torch.zeros(m.layers, a.batch, m.hidden)
    c = torch.zeros(m.layers, a.batch, m.hidden)
    lat = [0] * a.steps
    clock = time.perf_counter_ns
    with torch.inference_mode():
        y = None
        for t in range(a.warmup):
            y, h, c = m(xs[t & 63], h, c)
        start = clock()
        for t in range(a.steps):
            t0 = clock()
            y, h, c = m(xs[t & 63], h, c)
            lat[t] = clock() - t0
        total = clock() - start
        finite = bool(torch.isfinite(y).all()) and bool(torch.isfinite(h).all())
    steptiming.emit("pytorch", {"hidden": m.hidden, "layers": m.layers, "input": m.n_in, "outputs": m.n_out},
                    a.batch, a.steps, lat, total, finite,
                    version=torch.__version__, onednn=a.onednn)


if __name__ == "__main__":
    main()
