#!/usr/bin/env python3
"""Independent PyTorch reference fixtures for recurd (see DESIGN.md §1–§3).

    /root/venv/bin/python generate.py      # needs: pip install torch safetensors numpy

Writes, relative to this file's folder:
  data/                       the input streams (made once from the shared data, then reused)
  forward/<case>/             model.safetensors + expected.csv (one line of O predictions per step)
  fit/<case>/                 model.safetensors, final.safetensors, expected.json, losses.csv
  cases.json (the forward cases), fit/cases.json

Everything is float32, single-threaded and seeded, so a rerun rewrites identical files.
"""
import copy, csv, json, math, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("RECURD_SOURCE_DATA", "/work/shared/data")  # only needed if data/ is missing
torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)


def here(*parts):
    path = os.path.join(HERE, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


# ---------------------------------------------------------------- input streams

def make_data():
    """Create data/ once. The committed files are the source of truth afterwards, so regenerating
    the fixtures does not need the shared data directory."""
    if not os.path.exists(here("data", "features3.csv")):
        # Smooth-ish: each column is a sum of three random sines plus a little noise, |v| < ~2.
        rng = np.random.RandomState(1234)
        t = np.arange(300)[:, None]
        cols = []
        for _ in range(3):
            f, ph, a = rng.uniform(0.01, 0.15, 3), rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.2, 0.6, 3)
            cols.append((a * np.sin(f * t + ph)).sum(axis=1) + 0.05 * rng.randn(300))
        with open(here("data", "features3.csv"), "w") as fh:
            fh.write("a,b,c\n")
            for row in np.stack(cols, axis=1):
                fh.write(",".join("%.7g" % v for v in row) + "\n")
    if not os.path.exists(here("data", "features1.csv")):
        with open(os.path.join(SOURCE, "nab", "machine_temperature_system_failure.csv")) as fh:
            rows = list(csv.DictReader(fh))[:1500]
        v = np.array([float(r["value"]) for r in rows])
        z = (v - v.mean()) / v.std()  # population std (ddof=0), in float64
        with open(here("data", "features1.csv"), "w") as fh:
            fh.write("timestamp,value\n")
            for r, x in zip(rows, z):
                fh.write("%s,%.7g\n" % (r["timestamp"], x))
    if not os.path.exists(here("data", "text.txt")):
        with open(os.path.join(SOURCE, "text", "shakespeare.txt"), "rb") as fh:
            text = fh.read(3000)
        with open(here("data", "text.txt"), "wb") as fh:
            fh.write(text)


def read_features(rel, columns=None):
    """Parse a CSV exactly as written (the Swift side reads the same text) -> float32 (N, In)."""
    with open(here(rel)) as fh:
        rows = list(csv.DictReader(fh))
    columns = columns or list(rows[0].keys())
    return torch.tensor([[float(r[c]) for c in columns] for r in rows], dtype=torch.float32)


def read_bytes(rel, n=None):
    with open(here(rel), "rb") as fh:
        data = fh.read()
    return torch.tensor(list(data[:n] if n else data), dtype=torch.long)


# ---------------------------------------------------------------- the model (DESIGN §1, §2)

class Net(nn.Module):
    """embedding? -> one single-layer nn.LSTM/nn.GRU per layer (sizes may differ) -> Linear head.
    Sequences are (T, In) or (T,) token ids; one stream, so batch = 1 inside."""

    def __init__(self, cell, hidden, input_kind, input_size, out, head):
        super().__init__()
        self.cell, self.hidden, self.input_kind, self.head_kind = cell, hidden, input_kind, head
        # For tokens, input_size is the embedding width E (vocabulary is always 256 bytes).
        self.embed = nn.Embedding(256, input_size) if input_kind == "tokens" else None
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        sizes = [input_size] + hidden
        self.layers = nn.ModuleList(rnn(sizes[k], sizes[k + 1]) for k in range(len(hidden)))
        self.head = nn.Linear(hidden[-1], out)

    def zero_state(self):
        z = lambda h: torch.zeros(1, 1, h, dtype=self.head.weight.dtype)
        return [(z(h), z(h)) if self.cell == "lstm" else z(h) for h in self.hidden]

    def forward(self, x, state):
        """Returns head logits (T, O) and the per-layer state after the last step."""
        v = (self.embed(x) if self.embed is not None else x).unsqueeze(1)
        new_state = []
        for layer, s in zip(self.layers, state):
            v, s = layer(v, s)
            new_state.append(s)
        return self.head(v.squeeze(1)), new_state

    def tensors(self):
        """The DESIGN §2 names: each single-layer RNN's *_l0 becomes rnn.*_l{k}."""
        out = {}
        for k, layer in enumerate(self.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                out["rnn.%s_l%d" % (name, k)] = getattr(layer, name + "_l0")
        out["head.weight"], out["head.bias"] = self.head.weight, self.head.bias
        if self.embed is not None:
            out["embed.weight"] = self.embed.weight
        return {k: v.detach().contiguous().clone() for k, v in out.items()}

    def metadata(self):
        return {"format": "recurd/1", "cell": self.cell, "input": self.input_kind, "head": self.head_kind}

    def save(self, path):
        save_file({k: v.float() for k, v in self.tensors().items()}, path, self.metadata())
        canonical_metadata(path)


def canonical_metadata(path):
    """safetensors writes __metadata__ in hash-map order, which changes from run to run; rewrite
    the header with sorted metadata keys (same length, space-padded) so reruns are byte-identical."""
    with open(path, "r+b") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":")).encode()
        assert len(text) <= n
        fh.seek(8)
        fh.write(text + b" " * (n - len(text)))


def build(seed, scale, cell, hidden, input_kind, input_size, out, head):
    """torch default init under a fixed seed (biases are uniform, nonzero), then every weight
    matrix except the embedding (already N(0,1)) scaled up so activations are not all near 0."""
    torch.manual_seed(seed)
    net = Net(cell, hidden, input_kind, input_size, out, head)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "weight" in name and not name.startswith("embed"):
                p.mul_(scale)
    return net


def activate(head, logits):
    return {"linear": lambda v: v, "softmax": lambda v: torch.softmax(v, -1),
            "sigmoid": torch.sigmoid}[head](logits)


def loss_fn(head, logits, y):
    """Mean over steps of the per-step L (every step has O outputs, so one mean does it)."""
    if head == "linear":
        return ((logits - y) ** 2).mean()
    if head == "softmax":
        return F.cross_entropy(logits, y)
    return F.binary_cross_entropy_with_logits(logits, y)


# ---------------------------------------------------------------- independent checks

def by_hand(path, inputs):
    """DESIGN §1 written out in float64 numpy from the saved file alone -> predictions (T, O)."""
    from safetensors import safe_open
    with safe_open(path, "np") as fh:
        meta, W = fh.metadata(), {k: fh.get_tensor(k).astype(np.float64) for k in fh.keys()}
    sig = lambda a: 1 / (1 + np.exp(-a))
    L = sum(1 for k in W if k.startswith("rnn.weight_ih_l"))
    h = [np.zeros(W["rnn.weight_hh_l%d" % k].shape[1]) for k in range(L)]
    c = [np.zeros_like(v) for v in h]
    preds = []
    for x in inputs:
        v = W["embed.weight"][int(x)] if meta["input"] == "tokens" else np.asarray(x, np.float64)
        for k in range(L):
            gi = W["rnn.weight_ih_l%d" % k] @ v + W["rnn.bias_ih_l%d" % k]
            gh = W["rnn.weight_hh_l%d" % k] @ h[k] + W["rnn.bias_hh_l%d" % k]
            if meta["cell"] == "lstm":
                i, f, g, o = np.split(gi + gh, 4)
                c[k] = sig(f) * c[k] + sig(i) * np.tanh(g)
                h[k] = sig(o) * np.tanh(c[k])
            else:  # r, z, n; the reset gate multiplies (U_n h + b_hn), i.e. after its bias
                (ir, iz, i_n), (hr, hz, hn) = np.split(gi, 3), np.split(gh, 3)
                r, z = sig(ir + hr), sig(iz + hz)
                n = np.tanh(i_n + r * hn)
                h[k] = (1 - z) * n + z * h[k]
            v = h[k]
        y = W["head.weight"] @ v + W["head.bias"]
        if meta["head"] == "softmax":
            y = np.exp(y - y.max()); y /= y.sum()
        elif meta["head"] == "sigmoid":
            y = sig(y)
        preds.append(y)
    return np.array(preds)


def stacked(net, inputs):
    """Same model through one nn.LSTM/nn.GRU(num_layers=L) (only when all hidden sizes agree)."""
    H, L = net.hidden[0], len(net.hidden)
    rnn = (nn.LSTM if net.cell == "lstm" else nn.GRU)(net.layers[0].input_size, H, num_layers=L)
    rnn.load_state_dict({k[4:]: v for k, v in net.tensors().items() if k.startswith("rnn.")})
    with torch.no_grad():
        v = net.embed(inputs) if net.embed is not None else inputs
        return activate(net.head_kind, net.head(rnn(v.unsqueeze(1))[0].squeeze(1))).numpy()


# ---------------------------------------------------------------- forward cases

FORWARD = [  # name, cell, hidden, input kind, In or E, head, O, scale, input
    # Scales: LSTM states stay small under torch's init, so LSTMs get a larger factor; chosen so
    # mean |h| is ~0.2-0.6 with little saturation and the softmaxes are clearly non-uniform.
    ("lstm1_linear", "lstm", [16], "features", 3, "linear", 3, 4.0, "data/features3.csv"),
    ("lstm3_sigmoid", "lstm", [24, 8, 12], "features", 3, "sigmoid", 5, 4.0, "data/features3.csv"),
    ("gru2_linear", "gru", [20, 10], "features", 3, "linear", 2, 2.5, "data/features3.csv"),
    ("gru3_sigmoid", "gru", [8, 16, 6], "features", 1, "sigmoid", 4, 2.0, "data/features1.csv"),
    ("lstm2_softmax_bytes", "lstm", [32, 16], "tokens", 8, "softmax", 256, 5.0, None),
    ("gru1_softmax_bytes", "gru", [24], "tokens", 12, "softmax", 256, 3.0, None),
    ("gru2_linear_bytes", "gru", [12, 12], "tokens", 4, "linear", 2, 1.0, None),
]


def load_input(kind, rel, n=None):
    if kind == "tokens":
        return read_bytes(rel, n)
    return read_features(rel, ["value"] if rel.endswith("features1.csv") else None)


def forward_cases():
    listing = []
    for seed, (name, cell, hidden, kind, size, head, out, scale, rel) in enumerate(FORWARD, 100):
        if kind == "tokens":  # the first 400 bytes of the text, as its own file
            rel = "forward/%s/input.txt" % name
            with open(here(rel), "wb") as fh:
                fh.write(bytes(read_bytes("data/text.txt", 400).tolist()))
        x = load_input(kind, rel)
        net = build(seed, scale, cell, hidden, kind, size, out, head)
        path = here("forward", name, "model.safetensors")
        net.save(path)
        with torch.no_grad():
            logits, _ = net(x, net.zero_state())
            p = activate(head, logits)
        with open(here("forward", name, "expected.csv"), "w") as fh:
            for row in p.tolist():
                fh.write(",".join("%.9g" % v for v in row) + "\n")
        # Checks: the float64 hand-written §1 from the file, and nn.*(num_layers) where possible;
        # a step-at-a-time run (state carried between calls) must agree with the whole sequence.
        diff = np.abs(by_hand(path, x.tolist()) - p.numpy()).max()
        assert diff < 1e-5, (name, diff)
        if len(set(hidden)) == 1 and len(hidden) > 1:
            sdiff = np.abs(stacked(net, x) - p.numpy()).max()
            assert sdiff < 1e-5, (name, sdiff)
        with torch.no_grad():
            s, steps = net.zero_state(), []
            for t in range(len(x)):
                lg, s = net(x[t:t + 1], s)
                steps.append(activate(head, lg))
        assert (torch.cat(steps) - p).abs().max() < 1e-5, name
        spread = float(logits.std())
        print("forward %-20s steps=%4d  by-hand diff=%.1e  logit std=%.3f" % (name, len(x), diff, spread))
        listing.append({"name": name, "cell": cell, "hidden": hidden, "input": kind,
                        **({"vocab": 256, "embed": size} if kind == "tokens" else {"input_size": size}),
                        "head": head, "outputs": out, "weight_scale": scale, "seed": seed,
                        "input_file": rel, "steps": len(x),
                        **({"columns": ["value"]} if rel.endswith("features1.csv") else {})})
    with open(here("cases.json"), "w") as fh:
        json.dump(listing, fh, indent=1)


# ---------------------------------------------------------------- online TBPTT (DESIGN §3)

def fit(net, x, k1, k2, optimizer, lr, clip):
    """Predict-then-learn over one stream with next-step targets, one step at a time."""
    params = list(net.parameters())
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr))
    head = net.head_kind
    state = net.zero_state()   # carried state s_{t-1}; never recomputed
    window = []                # (x_t, y_t, s_{t-1}), the last k2 entries
    fresh, updates, terms, losses = 0, 0, 0, []
    pending = None             # step t-1 awaiting its target: (x_{t-1}, s_{t-2}, logits p_{t-1})
    for t in range(len(x)):
        if pending is not None:
            # Step t's input reveals step t-1's target: resolve it before predicting step t.
            x_prev, s_prev, logits_prev = pending
            y = x[t]
            with torch.no_grad():
                losses.append(loss_fn(head, logits_prev, y.unsqueeze(0)).item())
            window.append((x_prev, y, s_prev))
            del window[:-k2]
            fresh += 1
            if fresh == k1:
                fresh, updates = 0, updates + 1
                xs, ys = torch.stack([e[0] for e in window]), torch.stack([e[1] for e in window])
                logits, _ = net(xs, window[0][2])  # saved state: a leaf without grad
                m = min(k1, len(window))
                terms += m
                loss_fn(head, logits[-m:], ys[-m:]).backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                opt.step()
                opt.zero_grad()
        with torch.no_grad():  # predict step t with the weights as they now are
            logits, new_state = net(x[t:t + 1], state)
        pending, state = (x[t], state, logits), new_state
    assert len(losses) == len(x) - 1
    assert updates == (len(x) - 1) // k1, (updates, len(x))
    assert terms == updates * min(k1, k2)  # each target is in exactly one update's loss (k2 >= k1)
    return losses, updates


def fit_by_index(net, x, k1, k2, optimizer, lr, clip):
    """The same rule restated by step index, as a check on fit()'s window bookkeeping: once t
    targets are known (just before predicting step t) an update is due iff t % k1 == 0; its window
    is steps [max(0, t-k2), t), started from the carried state saved before the first of them,
    with the loss on steps [t-k1, t). Returns the progressive losses."""
    params = list(net.parameters())
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr))
    before, logits_at = [net.zero_state()], []   # before[t] = s_{t-1}
    for t in range(len(x)):
        if t > 0 and t % k1 == 0:
            lo = max(0, t - k2)
            logits, _ = net(x[lo:t], before[lo])
            loss_fn(net.head_kind, logits[-min(k1, t - lo):], x[t - min(k1, t - lo) + 1:t + 1]).backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            opt.zero_grad()
        with torch.no_grad():
            logits, s = net(x[t:t + 1], before[t])
        logits_at.append(logits)
        before.append(s)
    with torch.no_grad():
        return [loss_fn(net.head_kind, logits_at[t], x[t + 1:t + 2]).item() for t in range(len(x) - 1)]


FIT = [  # name, cell, hidden, input kind, In or E, head, O, input, bytes, k1, k2, optimizer, lr, clip
    ("lstm_bytes_adam", "lstm", [32], "tokens", 16, "softmax", 256, "data/text.txt", None, 8, 16, "adam", 0.005, 1.0),
    ("gru_features_sgd", "gru", [16, 8], "features", 1, "linear", 1, "data/features1.csv", None, 5, 12, "sgd", 0.05, 5.0),
    ("lstm_features_adam", "lstm", [12, 12], "features", 3, "linear", 3, "data/features3.csv", None, 4, 4, "adam", 0.01, 0.0),
    ("gru_bytes_adam_2layer", "gru", [16, 24], "tokens", 8, "softmax", 256, "data/text.txt", 1200, 10, 25, "adam", 0.003, 0.5),
]
CURVE_BLOCK = 100


def fit_cases():
    listing = []
    for seed, (name, cell, hidden, kind, size, head, out, rel, nbytes, k1, k2, optimizer, lr, clip) \
            in enumerate(FIT, 200):
        if nbytes:  # a prefix of the text, as its own file
            rel = "fit/%s/input.txt" % name
            with open(here(rel), "wb") as fh:
                fh.write(bytes(read_bytes("data/text.txt", nbytes).tolist()))
        x = load_input(kind, rel)
        net = build(seed, 1.0, cell, hidden, kind, size, out, head)
        net.save(here("fit", name, "model.safetensors"))
        # Two twins from the same starting weights: a float64 one (a diagnostic: how far float32
        # rounding alone moves the result, to help choose the Swift tolerances) and a float32 one
        # for fit_by_index (a check on the bookkeeping).
        net64, net_check = copy.deepcopy(net).double(), copy.deepcopy(net)
        losses, updates = fit(net, x, k1, k2, optimizer, lr, clip)
        net.save(here("fit", name, "final.safetensors"))
        losses64, _ = fit(net64, x if kind == "tokens" else x.double(), k1, k2, optimizer, lr, clip)
        w32, w64 = net.tensors(), net64.tensors()
        # The index-based restatement must reproduce the same run (same ops, same order).
        check = fit_by_index(net_check, x, k1, k2, optimizer, lr, clip)
        assert np.abs(np.array(check) - np.array(losses)).max() < 1e-6, name
        assert all((w32[k] - v).abs().max() < 1e-6 for k, v in net_check.tensors().items()), name
        start = load_file(here("fit", name, "model.safetensors"))
        with open(here("fit", name, "losses.csv"), "w") as fh:
            fh.writelines("%.9g\n" % v for v in losses)
        mean_loss = float(np.mean(np.array(losses, dtype=np.float64)))
        curve = [float(np.mean(losses[i:i + CURVE_BLOCK])) for i in range(0, len(losses), CURVE_BLOCK)]
        expected = {
            "steps": len(x), "targets": len(losses), "updates": updates, "mean_loss": mean_loss,
            **({"mean_loss_bits": mean_loss / math.log(2)} if head == "softmax" else {}),
            "k1": k1, "k2": k2, "optimizer": optimizer, "lr": lr, "clip": clip, "input": rel,
            "curve": curve, "curve_block": CURVE_BLOCK,
            "max_abs_weight_change": max(float((w32[k] - start[k]).abs().max()) for k in w32),
            "float64_twin": {
                "mean_loss": float(np.mean(losses64)),
                "max_abs_final_weight_diff": max(float((w32[k].double() - w64[k]).abs().max()) for k in w32),
                "max_abs_progressive_loss_diff": float(np.max(np.abs(np.array(losses) - np.array(losses64)))),
            },
        }
        with open(here("fit", name, "expected.json"), "w") as fh:
            json.dump(expected, fh, indent=1)
        print("fit %-22s steps=%4d updates=%3d mean_loss=%.6f curve %.3f -> %.3f  f64 dw=%.1e"
              % (name, len(x), updates, mean_loss, curve[0], curve[-1],
                 expected["float64_twin"]["max_abs_final_weight_diff"]))
        listing.append({"name": name, "cell": cell, "hidden": hidden, "input": kind,
                        **({"vocab": 256, "embed": size} if kind == "tokens" else {"input_size": size}),
                        "head": head, "outputs": out, "seed": seed, "input_file": rel, "steps": len(x),
                        **({"columns": ["value"]} if rel.endswith("features1.csv") else {}),
                        "targets": "next", "k1": k1, "k2": k2, "optimizer": optimizer, "lr": lr,
                        "clip": clip})
    with open(here("fit", "cases.json"), "w") as fh:
        json.dump(listing, fh, indent=1)


if __name__ == "__main__":
    make_data()
    forward_cases()
    fit_cases()
