"""A recurd model file (DESIGN §2) as the PyTorch model a user would write: nn.LSTM + nn.Linear.

Shared by torch_step.py (which times it) and ort_step.py (which exports it to ONNX once, in a
separate process, so the ONNX Runtime process never loads torch).

As a script: export the model to ONNX and/or write its batch-1 outputs on a feature CSV:

    recurd_torch.py --model FILE [--onnx OUT.onnx] [--check-csv X.csv --check-out Y.npy]
"""
import argparse
import warnings

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open


def one_thread():
    """Every benchmark runs one thread (intra- and inter-op)."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


class StepModel(nn.Module):
    """x (T, B, In), h0/c0 (L, B, H) → y (T, B, O), hn, cn. The head applies to every step."""

    def __init__(self, rnn: nn.LSTM, head: nn.Linear, head_kind: str):
        super().__init__()
        self.rnn = rnn
        self.head = head
        self.head_kind = head_kind

    def forward(self, x, h0, c0):
        out, (hn, cn) = self.rnn(x, (h0, c0))
        y = self.head(out)
        if self.head_kind == "softmax":
            y = torch.softmax(y, dim=-1)
        elif self.head_kind == "sigmoid":
            y = torch.sigmoid(y)
        return y, hn, cn


def load(path: str) -> StepModel:
    """Loads a recurd feature-input LSTM model file into nn.LSTM(num_layers=L) + nn.Linear."""
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in f.keys()}
    assert meta.get("cell") == "lstm", f"{path}: the step peers take LSTM models, got cell={meta.get('cell')!r}"
    assert meta.get("input") == "features", f"{path}: the step peers take feature-input models"
    layers = 0
    while f"rnn.weight_ih_l{layers}" in t:
        layers += 1
    assert layers > 0, f"{path}: no rnn.weight_ih_l0"
    hidden = [t[f"rnn.weight_hh_l{k}"].shape[1] for k in range(layers)]
    assert len(set(hidden)) == 1, f"{path}: nn.LSTM needs one hidden size for all layers, got {hidden}"
    h = hidden[0]
    n_in = t["rnn.weight_ih_l0"].shape[1]
    n_out = t["head.weight"].shape[0]
    rnn = nn.LSTM(n_in, h, num_layers=layers)
    head = nn.Linear(h, n_out)
    rnn_state = {k[len("rnn."):]: v for k, v in t.items() if k.startswith("rnn.")}
    rnn.load_state_dict(rnn_state, strict=True)
    head.load_state_dict({"weight": t["head.weight"], "bias": t["head.bias"]}, strict=True)
    m = StepModel(rnn, head, meta.get("head", "linear")).eval()
    m.n_in, m.hidden, m.layers, m.n_out = n_in, h, layers, n_out
    return m


def export_onnx(m: StepModel, out: str, opset: int = 17):
    """One time step per call as a user exports it: explicit h0/c0 inputs, hn/cn outputs, dynamic batch.

    Uses the TorchScript exporter (dynamo=False), which maps nn.LSTM to ONNX LSTM nodes (one per
    layer) that ONNX Runtime runs with its fused CPU LSTM kernel.
    """
    x = torch.zeros(1, 1, m.n_in)
    h0 = torch.zeros(m.layers, 1, m.hidden)
    c0 = torch.zeros(m.layers, 1, m.hidden)
    axes = {"x": {1: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"},
            "y": {1: "batch"}, "hn": {1: "batch"}, "cn": {1: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x, h0, c0), out, dynamo=False, opset_version=opset,
                          input_names=["x", "h0", "c0"], output_names=["y", "hn", "cn"],
                          dynamic_axes=axes, do_constant_folding=True)


def run_sequence(m: StepModel, xs: np.ndarray) -> np.ndarray:
    """Batch-1 outputs for a (T, In) sequence, one step at a time with the state fed back."""
    h = torch.zeros(m.layers, 1, m.hidden)
    c = torch.zeros(m.layers, 1, m.hidden)
    ys = []
    with torch.inference_mode():
        for row in torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32)):
            y, h, c = m(row.view(1, 1, -1), h, c)
            ys.append(y.view(-1).numpy().copy())
    return np.stack(ys)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", help="export to this ONNX file")
    p.add_argument("--check-csv", help="header-less numeric CSV, one step per row")
    p.add_argument("--check-out", help=".npy file for the batch-1 outputs on --check-csv")
    a = p.parse_args()
    one_thread()
    m = load(a.model)
    if a.onnx:
        export_onnx(m, a.onnx)
    if a.check_csv:
        xs = np.loadtxt(a.check_csv, delimiter=",", dtype=np.float32, ndmin=2)
        np.save(a.check_out, run_sequence(m, xs))


if __name__ == "__main__":
    main()
