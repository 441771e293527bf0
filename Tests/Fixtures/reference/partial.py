#!/usr/bin/env python3
"""Independent PyTorch reference for explicit targets on partly labelled streams (DESIGN §3 with
steps sent without a target; README "Explicit targets").

    /root/venv/bin/python partial.py      # from this folder; needs torch, safetensors, numpy

The rule written out here, sharing no code with recurd: from a stream's first target on, every
learnable step is a window entry (x_t, y_t or none, s_{t-1}) (before it, a stream that has sent no
target keeps no window); the window keeps the last k2 entries; RESET zeroes the state and empties
the window. After every k1 new entries, if one of the last min(k1, window) entries has a
target, one update: re-run the window from its first entry's saved state, loss = mean of L over
the labelled entries among those last min(k1, window), backpropagate, clip, step. With none
labelled there is no update (the k1 count starts again either way). Each step is predicted with
the weights as they are, then its target (if any) is scored and the update (if due) applied.

Writes partial/<case>/model.safetensors, final.safetensors, steps.json (inputs, targets or null,
resets), expected.json (progressive losses of the labelled steps, updates), and partial/cases.json.
"""
import json, os
import numpy as np
import torch
from generate import Net, loss_fn, canonical_metadata, here
from safetensors.torch import save_file

torch.set_num_threads(1)

CASES = [  # name, cell, hidden, input size, head, outputs, k1, k2, optimizer, lr, clip, steps, pattern
    # A many-to-one classifier: sequences of 5 steps, each RESET at its start, labelled at its end.
    ("lstm_label_at_sequence_end", "lstm", [6], 3, "softmax", 4, 1, 5, "sgd", 0.1, 1.0, 150, "sequence_end"),
    # Labels on about half the steps at random, with longer unlabelled stretches; no resets.
    ("gru_half_labelled", "gru", [5, 4], 2, "linear", 2, 3, 7, "adam", 0.01, 1.0, 160, "random"),
    ("lstm_sparse_sigmoid", "lstm", [4], 2, "sigmoid", 3, 4, 6, "adam", 0.02, 0.5, 120, "sparse"),
]


def steps_for(seed, pattern, n, input_size, head, outputs):
    rng = np.random.default_rng(seed)
    xs = (rng.standard_normal((n, input_size)) * 0.8).astype(np.float32)
    resets = [pattern == "sequence_end" and t % 5 == 0 for t in range(n)]
    if pattern == "sequence_end":
        labelled = [t % 5 == 4 for t in range(n)]
    elif pattern == "random":
        labelled = list(rng.random(n) < 0.5)
        for t in range(60, 72):   # a stretch longer than k1 with no target at all
            labelled[t] = False
    else:
        labelled = [bool(v) for v in rng.random(n) < 0.15]
    ys = []
    for t in range(n):
        if not labelled[t]:
            ys.append(None)
        elif head == "softmax":
            ys.append(int(rng.integers(outputs)))
        elif head == "sigmoid":
            ys.append([float(v) for v in (rng.random(outputs) < 0.5).astype(np.float32)])
        else:
            ys.append([float(v) for v in rng.standard_normal(outputs).astype(np.float32)])
    return xs, ys, resets


def target_tensor(head, ys):
    if head == "softmax":
        return torch.tensor(ys, dtype=torch.long)
    return torch.tensor(ys, dtype=torch.float32)


def run(net, xs, ys, resets, k1, k2, optimizer, lr, clip):
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    head = net.head_kind
    state, window, fresh, updates, losses = net.zero_state(), [], 0, 0, []
    in_use = False   # the stream has sent a target: from then on every step is an entry
    x = torch.from_numpy(xs)
    for t in range(len(xs)):
        if resets[t]:
            state, window, fresh = net.zero_state(), [], 0
        with torch.no_grad():
            logits, new_state = net(x[t:t + 1], state)
        if ys[t] is not None:
            with torch.no_grad():
                losses.append(loss_fn(head, logits, target_tensor(head, [ys[t]])).item())
        in_use = in_use or ys[t] is not None
        if not in_use:
            state = new_state
            continue
        window.append((x[t], ys[t], state))
        del window[:-k2]
        state = new_state
        fresh += 1
        if fresh == k1:
            fresh = 0
            m = min(k1, len(window))
            labelled = [i for i in range(len(window) - m, len(window)) if window[i][1] is not None]
            if labelled:
                updates += 1
                out, _ = net(torch.stack([e[0] for e in window]), window[0][2])
                loss_fn(head, out[labelled], target_tensor(head, [window[i][1] for i in labelled])).backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                opt.step()
                opt.zero_grad()
    return losses, updates


def main():
    listing = []
    for seed, (name, cell, hidden, size, head, out, k1, k2, optimizer, lr, clip, n, pattern) in enumerate(CASES, start=40):
        torch.manual_seed(seed)
        net = Net(cell, hidden, "features", size, out, head)
        net.save(here("partial", name, "model.safetensors"))
        xs, ys, resets = steps_for(seed, pattern, n, size, head, out)
        losses, updates = run(net, xs, ys, resets, k1, k2, optimizer, lr, clip)
        net.save(here("partial", name, "final.safetensors"))
        with open(here("partial", name, "steps.json"), "w") as fh:
            json.dump({"x": [[float(v) for v in row] for row in xs], "y": ys, "reset": resets}, fh)
        with open(here("partial", name, "expected.json"), "w") as fh:
            json.dump({"losses": losses, "updates": updates}, fh, indent=1)
        listing.append({"name": name, "k1": k1, "k2": k2, "optimizer": optimizer, "lr": lr, "clip": clip,
                        "head": head, "steps": n})
        print(name, "updates", updates, "labelled", len(losses))
    with open(here("partial", "cases.json"), "w") as fh:
        json.dump(listing, fh, indent=1)


if __name__ == "__main__":
    main()
