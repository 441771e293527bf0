"""PyTorch peer for `recurd bench fit`: DESIGN §3 online TBPTT on one byte stream, written the
way a PyTorch user would (nn.Embedding → nn.LSTM → nn.Linear, torch.optim.Adam,
clip_grad_norm_), one thread. Prints one JSON line: steps, seconds, steps_per_second, mean_loss.

usage: torch_fit.py --input TEXT --steps N [--hidden 128 --embed 32 --k1 16 --k2 32 --lr 0.005 --clip 1]
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--input", required=True)
p.add_argument("--steps", type=int, default=20000)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--embed", type=int, default=32)
p.add_argument("--k1", type=int, default=16)
p.add_argument("--k2", type=int, default=32)
p.add_argument("--lr", type=float, default=0.005)
p.add_argument("--clip", type=float, default=1.0)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)

data = open(a.input, "rb").read()[: a.steps]
tokens = torch.tensor(list(data), dtype=torch.long)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, a.embed)
        self.rnn = nn.LSTM(a.embed, a.hidden)
        self.head = nn.Linear(a.hidden, 256)

    def forward(self, x, state):
        out, state = self.rnn(self.embed(x).unsqueeze(1), state)
        return self.head(out.squeeze(1)), state


net = Net()
opt = torch.optim.Adam(net.parameters(), lr=a.lr)
h = torch.zeros(1, 1, a.hidden)
c = torch.zeros(1, 1, a.hidden)
window = []  # (x, y, state before x)
pending = 0
losses = 0.0
targets = 0
prev_logits = None
prev_state = None

start = time.perf_counter()
for t in range(len(tokens)):
    x = tokens[t : t + 1]
    if prev_logits is not None:
        y = tokens[t : t + 1]
        losses += F.cross_entropy(prev_logits, y).item()
        targets += 1
        window.append((tokens[t - 1 : t], y, prev_state))
        if len(window) > a.k2:
            window.pop(0)
        pending += 1
        if pending == a.k1:
            pending = 0
            xs = torch.cat([w[0] for w in window])
            ys = torch.cat([w[1] for w in window])
            h0, c0 = window[0][2]
            out, _ = net.rnn(net.embed(xs).unsqueeze(1), (h0, c0))
            logits = net.head(out.squeeze(1))
            n = min(a.k1, len(window))
            loss = F.cross_entropy(logits[-n:], ys[-n:])
            opt.zero_grad()
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), a.clip)
            opt.step()
    prev_state = (h, c)
    with torch.no_grad():
        prev_logits, (h, c) = net(x, (h, c))
elapsed = time.perf_counter() - start
print(json.dumps({"peer": "pytorch", "steps": len(tokens), "seconds": elapsed,
                  "steps_per_second": len(tokens) / elapsed, "mean_loss": losses / max(targets, 1)}))
