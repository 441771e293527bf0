"""PyTorch peer for the sensor learning-quality benchmark: DESIGN §3 online TBPTT on one feature
stream with next-step targets and recurd's running standardisation, written the way a PyTorch
user would (nn.GRU / nn.LSTM → nn.Linear, torch.optim.Adam, clip_grad_norm_), one thread,
starting from a recurd model file. Prints one JSON line: steps, seconds, mean_loss (MSE in
standard deviations², the progressive loss recurd reports), last_half_loss.

Standardisation (recurd's rule): each input is counted into a running mean and population
variance (Welford, float64) before it is standardised, z = (x − μ) / sqrt(σ² + 1e-12); after
10 inputs (once they are not all equal) an input is counted no farther than 8 σ from the mean,
and the model sees z clamped to ±8, as input and as the target of step t (z_{t+1} as computed
when x_{t+1} arrives). The progressive loss is against the unclamped z.

usage: torch_fit_series.py --model FILE --input CSV --k1 N --k2 N --lr X --clip X
"""
import argparse, csv, json, math, time
import torch
import torch.nn as nn
from safetensors import safe_open

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--input", required=True)
p.add_argument("--k1", type=int, required=True)
p.add_argument("--k2", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--clip", type=float, required=True)
a = p.parse_args()
torch.set_num_threads(1)
torch.set_num_interop_threads(1)

with open(a.input) as f:
    rows = [r for r in csv.reader(f)][1:]
values = [float(r[-1]) for r in rows]

with safe_open(a.model, "pt") as f:
    meta = f.metadata()
    t = {k: f.get_tensor(k) for k in f.keys()}
cell = meta["cell"]
hidden = t["rnn.weight_hh_l0"].shape[1]
assert "rnn.weight_ih_l1" not in t, "one layer only"
rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(1, hidden)
head = nn.Linear(hidden, 1)
with torch.no_grad():
    for name in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
        getattr(rnn, name).copy_(t[f"rnn.{name}"])
    head.weight.copy_(t["head.weight"])
    head.bias.copy_(t["head.bias"])
params = list(rnn.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=a.lr)


def zero_state():
    z = torch.zeros(1, 1, hidden)
    return (z, z.clone()) if cell == "lstm" else z


n = 0
mean = 0.0
m2 = 0.0
state = zero_state()
window = []  # (z_t, z_{t+1}, state before t)
pending = 0
losses = []
prev_pred = None
prev_z = None
prev_state = None

start = time.perf_counter()
for x in values:
    v = x
    if n >= 10 and m2 > 0:
        limit = 8 * math.sqrt(m2 / n + 1e-12)
        v = min(max(x, mean - limit), mean + limit)
    n += 1
    d = v - mean
    mean += d / n
    m2 += d * (v - mean)
    z = (x - mean) / math.sqrt(m2 / n + 1e-12)
    z32 = torch.tensor([[[z]]], dtype=torch.float32)
    zt = z32.clamp(-8.0, 8.0)
    if prev_pred is not None:
        losses.append(float((prev_pred - z32).pow(2).mean()))
        window.append((prev_z, zt, prev_state))
        if len(window) > a.k2:
            window.pop(0)
        pending += 1
        if pending == a.k1:
            pending = 0
            xs = torch.cat([w[0] for w in window])
            ys = torch.cat([w[1] for w in window])
            out, _ = rnn(xs, window[0][2])
            pred = head(out)
            k = min(a.k1, len(window))
            loss = ((pred[-k:] - ys[-k:]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, a.clip)
            opt.step()
    prev_state = state
    prev_z = zt
    with torch.no_grad():
        out, state = rnn(zt, state)
        prev_pred = head(out)
elapsed = time.perf_counter() - start
half = len(losses) // 2
print(json.dumps({"impl": "pytorch", "steps": len(values), "seconds": elapsed, "steps_per_second": len(values) / elapsed,
                  "mean_loss": sum(losses) / len(losses), "last_half_loss": sum(losses[half:]) / (len(losses) - half)}))
