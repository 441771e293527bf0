"""PyTorch peer for `recurd bench fit`: DESIGN §3 online TBPTT on one byte stream, written the
way a PyTorch user would (nn.Embedding → nn.LSTM → nn.Linear, torch.optim.Adam,
clip_grad_norm_), one thread. Prints one JSON line: steps, seconds, steps_per_second, mean_loss.

Per byte t (all timed): resolve the previous step's target (progressive cross-entropy, window
entry, and every k1 entries one update: forward over the ≤k2-step window from its saved state,
loss over the last k1 steps, backward, clip, Adam), then predict step t under no_grad. Not timed:
reading the file, building the model.

--model FILE starts from a recurd model file (e.g. `recurd init --cell lstm --hidden 128 --vocab
256 --embed 32 --output-size 256 --head softmax --seed 1`, the model `recurd bench fit` starts
from), so that mean_loss can be compared with recurd's; without it, PyTorch's default init
(seed 0). --onednn off sets torch.backends.mkldnn.enabled = False.

usage: torch_fit.py --input TEXT --steps N [--hidden 128 --embed 32 --k1 16 --k2 32 --lr 0.005 --clip 1]
                    [--model FILE] [--onednn on|off]
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--input", required=True)
p.add_argument("--steps", type=int, default=20000)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--embed", type=int, default=32)
p.add_argument("--k1", type=int, default=16)
p.add_argument("--k2", type=int, default=32)
p.add_argument("--lr", type=float, default=0.005)
p.add_argument("--clip", type=float, default=1.0)
p.add_argument("--model", help="start from this recurd model file (token-input, one LSTM layer, softmax head)")
p.add_argument("--onednn", choices=["on", "off"], default="on")
p.add_argument("--marks", default="", help="comma-separated target counts at which to report the running mean loss")
a = p.parse_args()
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.backends.mkldnn.enabled = a.onednn == "on"
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
if a.model:
    from safetensors.torch import load_file
    net.load_state_dict(load_file(a.model), strict=True)  # embed.*, rnn.*_l0, head.* — the same names
opt = torch.optim.Adam(net.parameters(), lr=a.lr)
h = torch.zeros(1, 1, a.hidden)
c = torch.zeros(1, 1, a.hidden)
window = []  # (x, y, state before x)
pending = 0
losses = 0.0
targets = 0
updates = 0
prev_logits = None
prev_state = None
marks = {int(m) for m in a.marks.split(",") if m}
at_marks = {}

start = time.perf_counter()
for t in range(len(tokens)):
    x = tokens[t : t + 1]
    if prev_logits is not None:
        y = tokens[t : t + 1]
        losses += F.cross_entropy(prev_logits, y).item()
        targets += 1
        if targets in marks:
            at_marks[targets] = losses / targets
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
            updates += 1
    prev_state = (h, c)
    with torch.no_grad():
        prev_logits, (h, c) = net(x, (h, c))
elapsed = time.perf_counter() - start
print(json.dumps({"bench": "fit", "impl": "pytorch", "steps": len(tokens), "updates": updates, "seconds": elapsed,
                  "steps_per_second": len(tokens) / elapsed, "mean_loss": losses / max(targets, 1),
                  "init": "recurd" if a.model else "pytorch", "onednn": a.onednn, "version": torch.__version__,
                  "marks": {str(k): v for k, v in sorted(at_marks.items())}}))
