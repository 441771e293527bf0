"""recurd's model maths (DESIGN §1) in plain numpy, one step at a time — the yardstick that
converted models are checked with, and a way to run a recurd model file without the daemon.

LSTM (PyTorch ``nn.LSTM``, gates i, f, g, o)::

    i, f, o = σ(W x + b_ih + U h + b_hh)   g = tanh(…)   c' = f⊙c + i⊙g   h' = o⊙tanh(c')

GRU (PyTorch ``nn.GRU``, gates r, z, n; the reset gate multiplies the recurrent product *after*
its bias — Keras ``reset_after=True``, ONNX ``linear_before_reset=1``)::

    r = σ(W_r x + b_ir + U_r h + b_hr)   z = σ(W_z x + b_iz + U_z h + b_hz)
    n = tanh(W_n x + b_in + r⊙(U_n h + b_hn))   h' = (1−z)⊙n + z⊙h

Head on the top layer's h at every step: linear, softmax or sigmoid. Computed in float64 by
default (``dtype=np.float32`` to mimic a float32 engine).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .modelfile import Model

__all__ = ["Model", "State", "initial_state", "step", "run", "run_file", "head_activation"]

State = List[Tuple[np.ndarray, Optional[np.ndarray]]]  # per layer (h, c); c is None for GRU


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable for large |x| in both directions.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def head_activation(z: np.ndarray, head: str) -> np.ndarray:
    """The head's activation on logits ``z`` (last axis)."""
    if head == "linear":
        return z
    if head == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if head == "sigmoid":
        return _sigmoid(z)
    raise ValueError(f"unknown head '{head}'")


def initial_state(model: Model, dtype=np.float64) -> State:
    """Zero state: (h, c) per layer."""
    return [(np.zeros(h, dtype), np.zeros(h, dtype) if model.cell == "lstm" else None) for h in model.hidden]


def _cast(model: Model, dtype):
    key = ("_cast", np.dtype(dtype).str)
    cache = model.__dict__.setdefault("_reference_cache", {})
    if key not in cache:
        cache[key] = (
            [tuple(t.astype(dtype) for t in layer) for layer in model.layers],
            model.head_weight.astype(dtype), model.head_bias.astype(dtype),
            None if model.embed is None else model.embed.astype(dtype),
        )
    return cache[key]


def step(model: Model, x: Union[np.ndarray, int], state: State, dtype=np.float64) -> Tuple[np.ndarray, State]:
    """One step: ``x`` a feature vector (features model) or a token id (tokens model). Returns
    (prediction, new state)."""
    layers, hw, hb, embed = _cast(model, dtype)
    if embed is not None:
        t = int(x)
        if not 0 <= t < embed.shape[0]:
            raise ValueError(f"token {t} is outside the vocabulary of {embed.shape[0]}")
        inp = embed[t]
    else:
        inp = np.asarray(x, dtype).reshape(-1)
        if inp.shape[0] != model.input_size:
            raise ValueError(f"{inp.shape[0]} features; the model takes {model.input_size}")
    new: State = []
    for (wih, whh, bih, bhh), (h, c) in zip(layers, state):
        gi = wih @ inp + bih
        gh = whh @ h + bhh
        n = h.shape[0]
        if model.cell == "lstm":
            g = gi + gh
            i, f, gg, o = _sigmoid(g[:n]), _sigmoid(g[n:2 * n]), np.tanh(g[2 * n:3 * n]), _sigmoid(g[3 * n:])
            c2 = f * c + i * gg
            h2 = o * np.tanh(c2)
            new.append((h2, c2))
        else:
            r = _sigmoid(gi[:n] + gh[:n])
            z = _sigmoid(gi[n:2 * n] + gh[n:2 * n])
            nn_ = np.tanh(gi[2 * n:] + r * gh[2 * n:])
            h2 = (1 - z) * nn_ + z * h
            new.append((h2, None))
        inp = h2
    y = head_activation(hw @ inp + hb, model.head)
    if model.residual:  # the head predicts the change: the step's own features are added back
        y = y + np.asarray(x, dtype).reshape(-1)
    return y, new


def run(model: Model, inputs: Union[Sequence, np.ndarray, bytes, str], state: Optional[State] = None,
        dtype=np.float64, return_state: bool = False):
    """Step-wise predictions for a whole sequence: (steps, outputs). ``inputs`` is steps × features,
    or token ids / bytes / a str (UTF-8 bytes) for a tokens model. The prediction at row t is what
    the model says after consuming steps 0..t (a many-to-one framework model's output for that
    prefix)."""
    if isinstance(inputs, str):
        inputs = inputs.encode("utf-8")
    if isinstance(inputs, (bytes, bytearray)):
        inputs = list(inputs)
    s = initial_state(model, dtype) if state is None else state
    out = []
    for x in inputs:
        p, s = step(model, x, s, dtype)
        out.append(p)
    y = np.array(out, dtype).reshape(len(out), model.output_size)
    return (y, s) if return_state else y


def run_file(path: str, inputs, dtype=np.float64) -> np.ndarray:
    """``run`` on a model file."""
    return run(Model.load(path), inputs, dtype=dtype)
