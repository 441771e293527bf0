"""PyTorch state dicts (``torch.save`` files or safetensors) → recurd models.

Finds ``nn.LSTM``/``nn.GRU`` tensors (``<prefix>weight_ih_l{k}`` …) under any prefix — one module
with ``num_layers`` layers, or several modules stacked in the order ``stack`` gives (a state dict
records neither the order ``forward()`` runs them in nor how it joins them, so that is never
guessed) — one ``nn.Linear`` head whose input is the top layer's hidden size, and optionally one
``nn.Embedding`` (a module whose name says ``emb``, or the one ``embed_prefix`` names: a
bias-free ``nn.Linear`` in front of the recurrent layers has the same tensors). recurd's layout *is* PyTorch's, so
the tensors are copied as they are. ``--head`` says the activation applied to the Linear's output
(a state dict does not record it; default linear).
"""
from __future__ import annotations

import collections
import os
import re
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..modelfile import Model, read_safetensors, ModelFileError
from ._common import CheckResult, Conversion, ExportError, build_model, compare, random_inputs, resolve_head
from ._torchfile import TorchFileError, flatten, load_torch_file

_RNN = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<k>\d+)(?P<rev>_reverse)?$")
_DEFAULT_IGNORED = ("optimizer.", "optim.", "optimizer_state_dict.", "scheduler.", "lr_scheduler.", "scaler.")


def load_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    with open(path, "rb") as fh:
        head = fh.read(16)
    is_zip = head[:2] == b"PK"
    if not is_zip:
        try:
            tensors, metadata = read_safetensors(path)
            fmt = metadata.get("format", "")
            if fmt.startswith("recurd/"):
                try:
                    Model.load(path)
                except ModelFileError as e:
                    raise ExportError(f"{os.path.basename(path)}: a recurd model file ({fmt}) the daemon cannot read: {e}") from None
                raise ExportError(f"{os.path.basename(path)}: already a recurd model file ({fmt}): serve it as it is "
                                  f"(`recurd serve --model {os.path.basename(path)}`); there is nothing to convert")
            return collections.OrderedDict(tensors)
        except ModelFileError as e:
            if path.endswith(".safetensors"):
                raise ExportError(f"{os.path.basename(path)}: {e}") from None
            raise ExportError(f"{os.path.basename(path)}: neither a torch.save zip file nor safetensors "
                              "(legacy torch.save format? re-save with torch >= 1.6)") from None
    try:
        return flatten(load_torch_file(path))
    except TorchFileError as e:
        raise ExportError(f"{os.path.basename(path)}: {e}") from None


def _dotted(prefix: Optional[str]) -> Optional[str]:
    """A module prefix as the state dict spells it: 'encoder.rnn' and 'encoder.rnn.' both mean the
    module encoder.rnn ('' is the root)."""
    if prefix is None or prefix == "" or prefix.endswith("."):
        return prefix
    return prefix + "."


def _pick(given: str, available: Sequence[str], what: str, where: str) -> str:
    """The prefix in ``available`` that ``given`` names: itself, or the one prefix that ends with
    it (so 'fc.' finds 'model_state_dict.fc.' in a checkpoint dict)."""
    if given in available:
        return given
    ends = [a for a in available if a.endswith("." + given)]
    if len(ends) == 1:
        return ends[0]
    listed = ", ".join(_mod(a) for a in available) or "none"
    raise ExportError(f"{where}: no {what} '{_mod(given)}'" + (f" (several end so: {', '.join(map(_mod, ends))})" if ends else "")
                      + f"; candidates: {listed}")


def _mod(prefix: str) -> str:
    return prefix.rstrip(".") or "(root)"


def _shape(a: np.ndarray) -> str:
    return "×".join(map(str, a.shape))


def convert_pytorch(path: str, head: Optional[str] = None, rnn_prefix: Optional[str] = None,
                    head_prefix: Optional[str] = None, embed_prefix: Optional[str] = None,
                    ignore: Sequence[str] = (), stack: Optional[Sequence[str]] = None, **_: Any) -> Conversion:
    where = os.path.basename(path)
    sd = load_state_dict(path)
    rnn_prefix, head_prefix, embed_prefix = _dotted(rnn_prefix), _dotted(head_prefix), _dotted(embed_prefix)
    ignored = tuple(_dotted(p) for p in ignore) + _DEFAULT_IGNORED
    sd = collections.OrderedDict((k, v) for k, v in sd.items()
                                 if not (k.startswith(ignored) or k + "." in ignored) and np.issubdtype(v.dtype, np.floating))
    if rnn_prefix is not None:
        found = list(dict.fromkeys(m["prefix"] for m in map(_RNN.match, sd) if m))
        rnn_prefix = _pick(rnn_prefix, found, "nn.LSTM/nn.GRU module", where)
    notes: List[str] = []

    # Recurrent modules, in state-dict order.
    groups: "collections.OrderedDict[str, Dict[int, Dict[str, np.ndarray]]]" = collections.OrderedDict()
    for key, a in sd.items():
        m = _RNN.match(key)
        if not m:
            continue
        prefix = m["prefix"]
        if rnn_prefix is not None and prefix != rnn_prefix:
            continue
        if m["rev"]:
            raise ExportError(f"module '{_mod(prefix)}': '{key}' — a bidirectional RNN reads the sequence backwards too; "
                              "not a streaming model")
        if m["kind"] == "weight_hr":
            raise ExportError(f"module '{_mod(prefix)}': '{key}' — an LSTM with proj_size projects h; recurd's LSTM has no projection")
        groups.setdefault(prefix, {}).setdefault(int(m["k"]), {})[m["kind"]] = a
    if not groups:
        raise ExportError(f"{where}: no nn.LSTM/nn.GRU tensors (…weight_ih_l0, …weight_hh_l0)"
                          + (f" under prefix '{rnn_prefix}'" if rnn_prefix is not None else ""))
    if len(groups) > 1:
        names = [_mod(p) for p in groups]
        if not stack:
            raise ExportError(f"{where}: {len(groups)} separate nn.LSTM/nn.GRU modules ({', '.join(names)}); a state dict does not "
                              "record how forward() joins them. If it feeds each one's output sequence straight into the next, "
                              "give the order forward() runs them in with --stack NAME,NAME… (stack= in Python); an "
                              "encoder–decoder, a skip connection or any layer between them cannot be mapped (--rnn-prefix "
                              "takes one module alone)")
        order = [_pick(_dotted(p), list(groups), "nn.LSTM/nn.GRU module", where) for p in stack]
        if sorted(order) != sorted(groups) or len(set(order)) != len(order):
            raise ExportError(f"{where}: --stack {','.join(stack)} must name each of the modules {', '.join(names)} once "
                              "(leave a module out with --ignore)")
        groups = collections.OrderedDict((p, groups[p]) for p in order)
        notes.append(f"modules stacked in the order --stack gives: {' → '.join(_mod(p) for p in order)}")
    elif stack and len(stack) > 1:
        raise ExportError(f"{where}: --stack names {len(stack)} modules; the state dict has one ({_mod(next(iter(groups)))})")
    layers, cell, used = [], None, set()
    for prefix, by_layer in groups.items():
        for k in range(len(by_layer)):
            if k not in by_layer:
                raise ExportError(f"{prefix}: layer {k} is missing (found layers {sorted(by_layer)})")
            t = by_layer[k]
            for need in ("weight_ih", "weight_hh"):
                if need not in t:
                    raise ExportError(f"{prefix}{need}_l{k}: missing")
            wih, whh = t["weight_ih"], t["weight_hh"]
            h = whh.shape[1]
            g = whh.shape[0] // h if whh.ndim == 2 and h else 0
            kind = {4: "lstm", 3: "gru"}.get(g) if whh.ndim == 2 and whh.shape[0] == g * h else None
            if kind is None:
                raise ExportError(f"{prefix}weight_hh_l{k}: shape {_shape(whh)} is neither LSTM (4H×H) nor GRU (3H×H)"
                                  + (" — a plain nn.RNN has no place in recurd" if g == 1 else ""))
            if cell is not None and kind != cell:
                raise ExportError(f"{where}: {prefix}weight_hh_l{k}: {kind.upper()} layers after {cell.upper()} layers; "
                                  "recurd stacks one cell kind")
            cell = kind
            b_ih = t.get("bias_ih", np.zeros(g * h, np.float32))
            b_hh = t.get("bias_hh", np.zeros(g * h, np.float32))
            if "bias_ih" not in t:
                notes.append(f"module '{_mod(prefix)}': bias=False — zero biases written")
            layers.append((wih, whh, b_ih, b_hh))
            for kk in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                used.add(f"{prefix}{kk}_l{k}")
    for i in range(1, len(layers)):
        if layers[i][0].shape[1] != layers[i - 1][1].shape[1]:
            raise ExportError(f"the recurrent layers do not chain: layer {i} takes {layers[i][0].shape[1]} inputs, "
                              f"layer {i - 1} gives {layers[i - 1][1].shape[1]} (found modules: {', '.join(p or '(root)' for p in groups)})")
    h_last, in_first = layers[-1][1].shape[1], layers[0][0].shape[1]

    rest = [(k, v) for k, v in sd.items() if k not in used]
    def module(key):
        return key[: -len("weight")] if key.endswith("weight") else None
    linears = [(module(k), v) for k, v in rest if module(k) is not None and v.ndim == 2]
    # Head.
    if head_prefix is not None:
        head_prefix = _pick(head_prefix, [p for p, _ in linears], "nn.Linear module", where)
        cands = [(p, w) for p, w in linears if p == head_prefix]
    else:
        cands = [(p, w) for p, w in linears if w.shape[1] == h_last and p != embed_prefix]
        # An embedding as wide as the top layer looks like a bias-less Linear: prefer modules with
        # a bias, then names that do not say "emb".
        for keep in (lambda p: f"{p}bias" in sd, lambda p: "emb" not in p.lower()):
            if len(cands) > 1 and any(keep(p) for p, _ in cands):
                cands = [(p, w) for p, w in cands if keep(p)]
    if not cands:
        raise ExportError(f"{where}: no nn.Linear head with {h_last} inputs (the top recurrent layer's size)")
    if len(cands) > 1:
        raise ExportError(f"{where}: several candidate heads ({', '.join(p + 'weight' for p, _ in cands)}). If forward() runs "
                          "one after the other (say Linear → ReLU → Linear), the model cannot be mapped: recurd's head is one "
                          "Linear. If only one of them reads the recurrent output and the others belong to other objects, "
                          "choose it with --head-prefix and leave the others out with --ignore PREFIX")
    hp, hw = cands[0]
    hb = sd.get(f"{hp}bias", np.zeros(hw.shape[0], np.float32))
    used.update({f"{hp}weight", f"{hp}bias"})
    # Embedding.
    emb = None
    if embed_prefix is not None:
        embed_prefix = _pick(embed_prefix, [p for p, _ in linears if p != hp], "nn.Embedding module", where)
        key = f"{embed_prefix}weight"
        emb = sd[key]
        used.add(key)
    else:
        ecands = [(p, w) for p, w in linears if p != hp and w.shape[1] == in_first and f"{p}bias" not in sd and "emb" in p.lower()]
        if len(ecands) > 1:
            raise ExportError(f"{where}: several candidate embeddings ({', '.join(p + 'weight' for p, _ in ecands)}); choose with --embed-prefix")
        if ecands:
            emb = ecands[0][1]
            used.add(f"{ecands[0][0]}weight")
    if emb is not None and (emb.ndim != 2 or emb.shape[1] != in_first):
        raise ExportError(f"the embedding has shape {_shape(emb)}; the first recurrent layer takes {in_first} inputs")
    leftover = [k for k in sd if k not in used]
    lookalikes = [k for k in leftover if module(k) and sd[k].ndim == 2 and sd[k].shape[1] == in_first and f"{module(k)}bias" not in sd]
    if emb is None and lookalikes:
        k = lookalikes[0]
        raise ExportError(f"{where}: '{k}' ({_shape(sd[k])}) feeds the first recurrent layer's {in_first} inputs and has no bias: "
                          "a bias-free nn.Linear in front of the recurrent layers cannot be mapped; if it is an nn.Embedding, "
                          f"say so with --embed-prefix {_mod(module(k))}")
    if leftover:
        shown = ", ".join(f"{k} ({_shape(sd[k])})" for k in leftover[:6]) + (" …" if len(leftover) > 6 else "")
        raise ExportError(f"{where}: tensors that have no place in a recurd model ([embedding] → LSTM/GRU → one linear head): "
                          f"{shown}. Layers between the recurrent layers and the head cannot be mapped; "
                          "tensors of other objects can be left out with --ignore PREFIX")

    out_head = resolve_head("linear", head, f"the Linear head '{_mod(hp)}'", notes) if head else "linear"
    if head is None:
        notes.append("a state dict does not record the head's activation: linear written (use --head softmax|sigmoid)")
    model = build_model(where, cell, layers, hw, hb, head=out_head, embed=emb, metadata={"source": f"pytorch state dict: {where}"})
    conv = Conversion(model=model, source="pytorch", notes=notes)
    try:
        import torch  # noqa: F401
    except ImportError:
        conv.unchecked_reason = "torch is not installed"
    else:
        conv.checker = lambda steps, seed: _check(model, [(p, len(g)) for p, g in groups.items()], steps, seed)
    return conv


def _check(model: Model, modules, steps: int, seed: int) -> CheckResult:
    """Rebuilds the network from nn.Embedding / nn.LSTM|GRU (as the state dict grouped them) /
    nn.Linear and runs it on a random sequence."""
    import torch
    import torch.nn as nn
    x = random_inputs(model, steps, seed)
    cls = nn.LSTM if model.cell == "lstm" else nn.GRU
    with torch.no_grad():
        if model.embed is not None:
            e = nn.Embedding(*model.embed.shape)
            e.weight.copy_(torch.from_numpy(model.embed))
            h = e(torch.from_numpy(np.asarray(x, np.int64))[None])
        else:
            h = torch.from_numpy(x)[None]
        k = 0
        for _prefix, n in modules:
            sizes = [model.layers[k + i][1].shape[1] for i in range(n)]
            rnn = cls(model.layers[k][0].shape[1], sizes[0], num_layers=n, batch_first=True)
            for i in range(n):
                wih, whh, bih, bhh = model.layers[k + i]
                for name, a in (("weight_ih", wih), ("weight_hh", whh), ("bias_ih", bih), ("bias_hh", bhh)):
                    getattr(rnn, f"{name}_l{i}").copy_(torch.from_numpy(a))
            h, _ = rnn(h)
            k += n
        lin = nn.Linear(model.head_weight.shape[1], model.head_weight.shape[0])
        lin.weight.copy_(torch.from_numpy(model.head_weight))
        lin.bias.copy_(torch.from_numpy(model.head_bias))
        y = lin(h)[0].double().numpy()
    # A state dict holds no code: this rebuilds the modules its tensors name and checks the
    # mapping of those tensors (gates, layers, head), not what the source's forward does
    # between them (an activation before the head, say), which the dict cannot show.
    return CheckResult(f"torch {torch.__version__} (nn.{cls.__name__}, nn.Linear rebuilt from the state dict's tensors; "
                       "its forward's code is not in the file, so anything it does between them is not checked)",
                       steps, compare(model, x, y, "linear"))
