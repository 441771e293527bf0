#!/usr/bin/env python3
"""Export fixtures: small models made by the real frameworks, what recurd-export makes of them, and
the frameworks' own step-wise outputs — so that tests can check conversions without Keras,
PyTorch or ONNX installed.

    python -m venv /tmp/venv-export
    /tmp/venv-export/bin/pip install torch keras onnx onnxruntime onnxscript safetensors h5py numpy pyzmq
    /tmp/venv-export/bin/pip install -e Clients/python
    KERAS_BACKEND=torch /tmp/venv-export/bin/python Tests/Fixtures/export/generate.py [NAME ...]

With NAMEs (cases, refusals, variants, or "onnx_states" for all of that folder), only those are
made again and manifest.json keeps its other entries; the entries made record the versions that
differ from the manifest's ("versions"), e.g. cases added later with a newer torch without
rewriting the committed ones (onnx_lstm2_hn, onnx_gru2_hn and onnx_states/: torch 2.15.0).

Made with the versions recorded in manifest.json ("versions"); at the time of writing: Python
3.11.7, torch 2.13.0+cpu, keras 3.15.1 (torch backend), onnx 1.23.2, onnxruntime 1.32.0,
onnxscript 0.7.2, safetensors 0.8.0, h5py 3.16.0, numpy 2.4.6.

For every case in `<case>/`:
  source.keras | source.pt | source.safetensors | source.onnx   the framework's file
  model.safetensors    what `recurd-export` wrote for it (DESIGN §2)
  case.json            the input sequence (T steps; features or token ids), the framework's
                       prediction at every step t for the prefix x_1..x_t ("expected", computed by
                       running the framework model on each prefix), and how to convert it
  input.csv | input.txt  the same input for `recurd run` (features; or bytes for vocab-256 models)
`refuse/` holds models recurd-export must refuse, with the words its message must contain
(manifest.json → "refuse"). `onnx_states/` holds ONNX graphs around a head on the final state
(h_n of a multi-layer LSTM/GRU, sequence_lens): variants that must convert to a case's model
(manifest.json → "variants") and graphs that must be refused (listed under "refuse").

Weights are random (seeded) and larger than the frameworks' initialisers, biases included, so that
every gate, bias and the reordering of gates matter. Everything is float32 and seeded: a rerun writes byte-identical
files except the .keras zips, which carry a save date (their contents are the same); framework
outputs may differ in the last bits across versions.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "Clients", "python", "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)

import keras  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import safetensors  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
import h5py  # noqa: E402

from recurd import reference  # noqa: E402
from recurd.modelfile import Model  # noqa: E402
from recurd.export import convert  # noqa: E402
from recurd.export._hdf5 import read_hdf5  # noqa: E402
from recurd.export._onnxproto import load_onnx  # noqa: E402
from recurd.export._torchfile import flatten, load_torch_file  # noqa: E402

T = 10
TOL = 2e-5
cases, refusals, variants = [], [], []
ONLY = set(sys.argv[1:])  # names to make again; empty: everything


def wanted(name):
    return not ONLY or name in ONLY


def case_dir(name):
    d = os.path.join(HERE, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def g9(v):
    return float("%.9g" % v)


def finish(name, d, source_file, source, x, expected, convert_args, framework, note):
    """Converts with recurd.export (numpy only), checks the result against the framework's outputs,
    and writes case.json / model.safetensors / input.csv|txt."""
    conv = convert(os.path.join(d, source_file), source, convert_args.get("head"))
    conv.model.save(os.path.join(d, "model.safetensors"))
    ours = reference.run(conv.model, x)
    diff = float(np.max(np.abs(ours - expected)))
    assert diff < TOL, f"{name}: reference vs {framework}: {diff}"
    tokens = conv.model.embed is not None
    if tokens:
        inp = [int(t) for t in x]
    else:
        inp = [[g9(v) for v in row] for row in np.asarray(x, np.float32)]
        with open(os.path.join(d, "input.csv"), "w") as fh:
            fh.write(",".join(f"f{i}" for i in range(len(inp[0]))) + "\n")
            for row in inp:
                fh.write(",".join("%.9g" % v for v in row) + "\n")
    if tokens and conv.model.vocabulary == 256:
        with open(os.path.join(d, "input.txt"), "wb") as fh:
            fh.write(bytes(inp))
    info = {
        "name": name, "note": note, "framework": framework, "source_file": source_file,
        "convert": {"source": source, **convert_args},
        "model": {"cell": conv.model.cell, "hidden": conv.model.hidden, "input": conv.model.input,
                  "input_size": conv.model.input_size, "vocabulary": conv.model.vocabulary,
                  "outputs": conv.model.output_size, "head": conv.model.head},
        "steps": len(inp), "input": inp,
        "expected": [[g9(v) for v in row] for row in np.asarray(expected, np.float32)],
        "max_diff_reference_vs_framework": diff,
        "notes": conv.notes,
    }
    with open(os.path.join(d, "case.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    cases.append({"name": name, "framework": framework, "max_diff": diff})
    print(f"{name:28s} {conv.model.describe():48s} max |ref − {framework.split(' ')[0]}| = {diff:.2e}")


def randomize_keras(model, seed, scale=0.6):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in ws])


def keras_prefixes(model, x, tokens=False):
    outs = []
    for t in range(1, len(x) + 1):
        batch = np.asarray(x[None, :t], np.int32 if tokens else np.float32)
        y = keras.ops.convert_to_numpy(model(batch, training=False))
        outs.append(np.asarray(y, np.float64).reshape(-1, y.shape[-1])[-1])
    return np.array(outs)


def keras_case(name, model, x, seed, note, tokens=False, **convert_args):
    if not wanted(name):
        return
    randomize_keras(model, seed)
    d = case_dir(name)
    model.save(os.path.join(d, "source.keras"))
    # Check the built-in HDF5 reader against h5py on this file.
    import zipfile
    with zipfile.ZipFile(os.path.join(d, "source.keras")) as zf:
        raw = zf.read("model.weights.h5")
    ours = read_hdf5(raw)
    import io
    with h5py.File(io.BytesIO(raw), "r") as f:
        theirs = {}
        f.visititems(lambda n, o: theirs.__setitem__(n, np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours), name
    loaded = keras.saving.load_model(os.path.join(d, "source.keras"), compile=False)
    expected = keras_prefixes(loaded, x, tokens)
    finish(name, d, "source.keras", "keras", x, expected, convert_args,
           f"keras {keras.__version__} ({keras.backend.backend()} backend)", note)


def scale_torch(module, seed, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * scale)


def torch_prefixes(forward, x):
    with torch.no_grad():
        return np.array([forward(x[:t])[-1] for t in range(1, len(x) + 1)], np.float64)


def torch_case(name, module, forward, x, seed, note, file="source.pt", wrap=None, **convert_args):
    if not wanted(name):
        return
    scale_torch(module, seed)
    module.eval()
    d = case_dir(name)
    sd = module.state_dict()
    path = os.path.join(d, file)
    if file.endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    else:
        torch.save(wrap(sd) if wrap else sd, path)
        # The restricted unpickler reads exactly what torch.load reads.
        ours = flatten(load_torch_file(path))
        theirs = {k: v.numpy() for k, v in flatten_torch(torch.load(path, weights_only=True)).items()}
        assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours), name
    expected = torch_prefixes(forward, x)
    finish(name, d, file, "pytorch", x, expected, convert_args, f"torch {torch.__version__}", note)


def flatten_torch(obj, prefix=""):
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_torch(v, f"{prefix}{k}."))
    return out


def onnx_export(module, example, path, dynamo, dynamic=True, input_dtype=None, opset=17):
    module.eval()
    if dynamo:
        dyn = {"x": {1: torch.export.Dim("T", min=1, max=4096)}} if dynamic else None
        torch.onnx.export(module, (example,), path, input_names=["x"], output_names=["y"], dynamic_shapes=dyn, dynamo=True)
    else:
        torch.onnx.export(module, (example,), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch"}} if dynamic else None,
                          opset_version=opset, dynamo=False)


def onnx_case(name, module, example, x, seed, note, dynamo, tokens=False, opset=17, **convert_args):
    scale_torch(module, seed)  # also when skipped: variants of the case export the same weights
    if not wanted(name):
        return
    d = case_dir(name)
    path = os.path.join(d, "source.onnx")
    onnx_export(module, example, path, dynamo, opset=opset)
    # The built-in protobuf reader reads the same initializers as onnx.
    m = onnx.load(path)
    from onnx import numpy_helper
    ours = load_onnx(path).initializers
    theirs = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours), name
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = []
    for t in range(1, len(x) + 1):
        inp = np.asarray(x[None, :t], np.int64 if tokens else np.float32)
        y = sess.run(None, {"x": inp})[0]
        outs.append(np.asarray(y, np.float64).reshape(-1, y.shape[-1])[-1])
    finish(name, d, "source.onnx", "onnx", x, np.array(outs), convert_args, f"onnxruntime {ort.__version__} (onnx {onnx.__version__})", note)


def refuse(name, make, words, source, folder="refuse"):
    if not wanted(name) and not (folder != "refuse" and wanted(folder)):
        return
    d = os.path.join(HERE, folder)
    os.makedirs(d, exist_ok=True)
    path = make(d)
    try:
        convert(path, source)
    except Exception as e:  # noqa: BLE001
        msg = str(e)
        for w in words:
            assert w in msg, f"{name}: '{w}' not in '{msg}'"
        refusals.append({"name": name, "file": os.path.relpath(path, HERE), "source": source, "words": words, "message": msg})
        print(f"refused {name:30s} {msg[:110]}")
        return
    raise AssertionError(f"{name} was converted")


rng = np.random.default_rng(2024)
xf4 = rng.normal(0, 1, (T, 4)).astype(np.float32)
xf3 = rng.normal(0, 1, (T, 3)).astype(np.float32)
xf2 = rng.normal(0, 1, (T, 2)).astype(np.float32)
text = np.frombuffer(b"To be, or not", np.uint8)[:T].astype(np.int64)
tok300 = rng.integers(0, 300, T)
tok64 = rng.integers(0, 64, T)

L = keras.layers
# --------------------------------------------------------------------------------- Keras
keras_case("keras_lstm2_softmax",
           keras.Sequential([keras.Input((None, 4)), L.LSTM(16, return_sequences=True), L.Dropout(0.2), L.LSTM(8), L.Dense(5, activation="softmax")]),
           xf4, 1, "the textbook LSTM(…, return_sequences=True) → LSTM(…) → Dense(softmax), smaller; a Dropout skipped")
keras_case("keras_gru2_sigmoid",
           keras.Sequential([keras.Input((None, 3)), L.GRU(12, return_sequences=True), L.GRU(6, return_sequences=True), L.Dense(3, activation="sigmoid")]),
           xf3, 2, "GRU (reset_after=True, bias (2, 3H)) stacked, sequence output, sigmoid labels")
keras_case("keras_embed_lstm_softmax",
           keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(256, 8), L.LSTM(12), L.Dense(256, activation="softmax")]),
           text, 3, "byte-level next-byte model: Embedding(256) → LSTM → Dense(256, softmax)", tokens=True)
inp = keras.Input((None, 2))
keras_case("keras_functional_lstm_linear", keras.Model(inp, L.Dense(2)(L.LSTM(6)(inp))), xf2, 4,
           "a Functional chain, linear (regression) head")

# --------------------------------------------------------------------------------- PyTorch
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 16, num_layers=2, batch_first=True)


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):  # x: T × 4
        y, _ = self.encoder.rnn(torch.from_numpy(x)[None])
        return self.fc(self.drop(y))[0].numpy()


net = LSTMNet()
torch_case("torch_lstm2_prefix", net, net.forward, xf4, 5, "nn.LSTM(num_layers=2) under 'encoder.rnn.', head 'fc.', torch.save(state_dict)")


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 10, num_layers=2)
        self.head = nn.Linear(10, 4)

    def forward(self, x):
        y, _ = self.gru(torch.from_numpy(x)[:, None])
        return torch.softmax(self.head(y[:, 0]), -1).numpy()


net = GRUNet()
torch_case("torch_gru2_softmax_safetensors", net, net.forward, xf3, 6, "nn.GRU(num_layers=2) saved with safetensors; --head softmax",
           file="source.safetensors", head="softmax")


class EmbedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(300, 6)
        self.lstm1 = nn.LSTM(6, 12, batch_first=True)
        self.lstm2 = nn.LSTM(12, 8, batch_first=True)
        self.fc = nn.Linear(8, 300)

    def forward(self, x):
        h = self.embedding(torch.from_numpy(np.asarray(x, np.int64))[None])
        h, _ = self.lstm1(h)
        h, _ = self.lstm2(h)
        return torch.softmax(self.fc(h), -1)[0].numpy()


net = EmbedNet()
torch_case("torch_embed_lstm_softmax", net, net.forward, tok300, 7,
           "nn.Embedding(300) → two nn.LSTM modules of different widths → nn.Linear; a checkpoint dict {'model': state_dict, 'epoch': 3}",
           wrap=lambda sd: {"model": sd, "epoch": 3}, head="softmax", stack=["lstm1", "lstm2"])

# --------------------------------------------------------------------------------- ONNX
class OnnxLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 10, num_layers=2, batch_first=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y)


onnx_case("onnx_lstm2_linear", OnnxLSTM(), torch.randn(1, 5, 4), xf4, 8,
          "torch.onnx.export (TorchScript exporter, opset 17, dynamic batch and time): LSTM per layer, MatMul+Add head on every step",
          dynamo=False)


class OnnxGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return torch.sigmoid(self.fc(y[:, -1]))


onnx_case("onnx_gru2_sigmoid", OnnxGRU(), torch.randn(1, 5, 3), xf3, 9,
          "torch.onnx.export(dynamo=True, dynamic time): GRU per layer (linear_before_reset=1), last step, Gemm, Sigmoid",
          dynamo=True)


class OnnxEmbedGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(64, 5)
        self.rnn = nn.GRU(5, 12, batch_first=True)
        self.fc = nn.Linear(12, 64)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return torch.softmax(self.fc(y), -1)


onnx_case("onnx_embed_gru_softmax", OnnxEmbedGRU(), torch.randint(0, 64, (1, 5)), tok64, 10,
          "Gather on an embedding → GRU → MatMul+Add → Softmax (TorchScript exporter)", dynamo=False, tokens=True)


class OnnxLSTMHn(nn.Module):
    """The many-to-one textbook model: the head reads the last layer's final state h_n[-1]
    (``select`` picks how forward() writes that, for the variants in onnx_states/)."""
    def __init__(self, select="h[-1]", cell=False):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 3)
        self.select, self.cell = select, cell

    def forward(self, x):
        _, (h, c) = self.rnn(x)
        if self.cell:
            h = c
        return self.fc(eval(self.select, {"h": h}))


class OnnxGRUHn(nn.Module):
    def __init__(self, select="h[-1]", features=8):
        super().__init__()
        self.rnn = nn.GRU(3, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(features, 4)
        self.select = select

    def forward(self, x):
        _, h = self.rnn(x)
        return torch.softmax(self.fc(eval(self.select, {"h": h})), -1)


lstm_hn, gru_hn = OnnxLSTMHn(), OnnxGRUHn()
onnx_case("onnx_lstm2_hn", lstm_hn, torch.randn(1, 5, 4), xf4, 11,
          "nn.LSTM(num_layers=2) → fc(h_n[-1]) (TorchScript exporter, opset 17): Concat of the layers' Y_h, Gather -1, Gemm; "
          "many-to-one: expected[t] is the model's output for the prefix up to t", dynamo=False)
onnx_case("onnx_gru2_hn", gru_hn, torch.randn(1, 5, 3), xf3, 12,
          "nn.GRU(num_layers=2) → softmax(fc(h_n[-1])) (TorchScript exporter, opset 11): Concat of the layers' Y_h, Gather -1, "
          "Gemm, Softmax; many-to-one", dynamo=False, opset=11)

# --------------------------------------------------------------------------------- refusals
def save_keras(name, model):
    def make(d):
        p = os.path.join(d, f"{name}.keras")
        model.save(p)
        return p
    return make


def save_torch(name, module):
    def make(d):
        p = os.path.join(d, f"{name}.pt")
        torch.save(module.state_dict(), p)
        return p
    return make


def save_onnx(name, module, example, edit=None):
    def make(d):
        p = os.path.join(d, f"{name}.onnx")
        onnx_export(module, example, p, dynamo=False)
        if edit:
            m = onnx.load(p)
            edit(m)
            onnx.save(m, p)
        return p
    return make


refuse("keras_gru_reset_before", save_keras("keras_gru_reset_before", keras.Sequential([keras.Input((None, 3)), L.GRU(4, reset_after=False, name="gru_before"), L.Dense(2)])),
       ["reset_after=False", "'gru_before'"], "keras")
refuse("keras_bidirectional", save_keras("keras_bidirectional", keras.Sequential([keras.Input((None, 3)), L.Bidirectional(L.LSTM(4)), L.Dense(2)])),
       ["Bidirectional"], "keras")
refuse("keras_dense_between", save_keras("keras_dense_between", keras.Sequential([keras.Input((None, 3)), L.LSTM(4), L.Dense(4, activation="relu", name="hidden"), L.Dense(2, name="out")])),
       ["'hidden'", "single dense head"], "keras")
refuse("keras_hard_sigmoid", save_keras("keras_hard_sigmoid", keras.Sequential([keras.Input((None, 3)), L.LSTM(4, recurrent_activation="hard_sigmoid", name="lstm_hard"), L.Dense(2)])),
       ["recurrent_activation='hard_sigmoid'", "'lstm_hard'"], "keras")
refuse("keras_relu_head", save_keras("keras_relu_head", keras.Sequential([keras.Input((None, 3)), L.GRU(4), L.Dense(2, activation="relu")])),
       ["activation 'relu'"], "keras")


class Proj(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 16, proj_size=8)
        self.fc = nn.Linear(8, 3)


class Bi(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 6, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y)


class TwoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 16)
        self.fc1 = nn.Linear(16, 8)
        self.fc2 = nn.Linear(8, 3)


class ReluBetween(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(torch.relu(y))


refuse("torch_proj_size", save_torch("torch_proj_size", Proj()), ["proj_size", "weight_hr_l0"], "pytorch")
refuse("torch_bidirectional", save_torch("torch_bidirectional", Bi()), ["bidirectional", "weight_ih_l0_reverse"], "pytorch")
refuse("torch_layers_between", save_torch("torch_layers_between", TwoLinear()), ["fc2.weight", "Layers between"], "pytorch")


def lbr0(m):
    for n in m.graph.node:
        if n.op_type == "GRU":
            for a in n.attribute:
                if a.name == "linear_before_reset":
                    a.i = 0


def peephole(m):
    from onnx import numpy_helper
    for n in m.graph.node:
        if n.op_type == "LSTM":
            H = [a.i for a in n.attribute if a.name == "hidden_size"][0]
            m.graph.initializer.append(numpy_helper.from_array(np.full((1, 3 * H), 0.5, np.float32), "P"))
            while len(n.input) < 7:
                n.input.append("")
            n.input.append("P")


class OneGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y)


class OneLSTM(OneGRU):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 4, batch_first=True)


refuse("onnx_gru_linear_before_reset_0", save_onnx("onnx_gru_linear_before_reset_0", OneGRU(), torch.randn(1, 5, 3), lbr0),
       ["linear_before_reset=0", "GRU node"], "onnx")
refuse("onnx_lstm_peepholes", save_onnx("onnx_lstm_peepholes", OneLSTM(), torch.randn(1, 5, 3), peephole), ["peephole", "LSTM node"], "onnx")
refuse("onnx_bidirectional", save_onnx("onnx_bidirectional", Bi(), torch.randn(1, 5, 4)), ["direction=bidirectional"], "onnx")
refuse("onnx_relu_between", save_onnx("onnx_relu_between", ReluBetween(), torch.randn(1, 5, 4)), ["Relu node", "lies between"], "onnx")


# ------------------------------------------------------------ onnx_states: heads on h_n, sequence_lens
def states_onnx(name, module, example, opset=17, dynamic=True, edit=None):
    """Exports ``module`` (the weights of a case above) to onnx_states/NAME.onnx, edited by ``edit``."""
    def make(d):
        p = os.path.join(d, f"{name}.onnx")
        onnx_export(module, example, p, dynamo=False, dynamic=dynamic, opset=opset)
        if edit:
            m = onnx.load(p)
            edit(m)
            onnx.checker.check_model(m)
            onnx.save(m, p)
        return p
    return make


def sequence_lens(value=None, input_name="sequence_lens"):
    """Wires every LSTM/GRU node's sequence_lens to a constant initializer (``value``) or to a new
    int32 graph input of shape [batch]."""
    def edit(m):
        from onnx import TensorProto, helper, numpy_helper
        if value is None:
            batch = m.graph.input[0].type.tensor_type.shape.dim[0]
            dim = batch.dim_param or batch.dim_value
            m.graph.input.append(helper.make_tensor_value_info(input_name, TensorProto.INT32, [dim]))
        else:
            m.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int32), input_name))
        for n in m.graph.node:
            if n.op_type in ("LSTM", "GRU"):
                while len(n.input) < 5:
                    n.input.append("")
                n.input[4] = input_name
    return edit


def variant(name, make, case, opset, words, feeds_lengths=False):
    """A graph that must convert to ``case``'s model (same tensors), with a note containing ``words``;
    checked against onnxruntime on the case's input."""
    if not wanted(name) and not wanted("onnx_states"):
        return
    d = os.path.join(HERE, "onnx_states")
    os.makedirs(d, exist_ok=True)
    path = make(d)
    conv = convert(path, "onnx")
    committed = Model.load(os.path.join(HERE, case, "model.safetensors"))
    ours, theirs = conv.model.tensors(), committed.tensors()
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours), name
    assert conv.model.head == committed.head, name
    for w in words:
        assert any(w in n for n in conv.notes), f"{name}: '{w}' not in {conv.notes}"
    with open(os.path.join(HERE, case, "case.json")) as fh:
        c = json.load(fh)
    x = np.array(c["input"], np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    fixed = sess.get_inputs()[0].shape[1]
    lengths = [fixed] if isinstance(fixed, int) else range(1, len(x) + 1)
    outs = []
    for t in lengths:
        feeds = {"x": x[None, :t]}
        if feeds_lengths:
            feeds["sequence_lens"] = np.array([t], np.int32)
        y = sess.run(None, feeds)[0]
        outs.append(np.asarray(y, np.float64).reshape(-1, y.shape[-1])[-1])
    expected = np.array(c["expected"])[[t - 1 for t in lengths]]
    diff = float(np.max(np.abs(np.array(outs) - expected)))
    assert diff < TOL, f"{name}: {diff}"
    check = conv.check()
    assert check.max_diff < TOL, f"{name}: {check}"
    variants.append({"name": name, "file": os.path.relpath(path, HERE), "same_model_as": case, "opset": opset,
                     "note_words": words, "notes": conv.notes, "max_diff": diff})
    print(f"variant {name:30s} = {case}, {conv.notes[0][:80]}")


def like(case_module, cls, *args):
    """A module of class ``cls`` (another forward()) holding the weights of ``case_module``."""
    m = cls(*args)
    m.load_state_dict(case_module.state_dict())
    return m.eval()


ex4, ex3 = torch.randn(1, 5, 4), torch.randn(1, 5, 3)
variant("lstm2_hn_slice_opset14", states_onnx("lstm2_hn_slice_opset14", like(lstm_hn, OnnxLSTMHn, "h[-1:]"), ex4, opset=14),
        "onnx_lstm2_hn", 14, ["Slice node", "h_n[-1:]", "many-to-one"])
variant("gru2_hn_index1_opset14", states_onnx("gru2_hn_index1_opset14", like(gru_hn, OnnxGRUHn, "h[1]"), ex3, opset=14),
        "onnx_gru2_hn", 14, ["Gather node", "h_n[1]", "the last layer's final state"])
variant("lstm2_hn_sequence_lens_input", states_onnx("lstm2_hn_sequence_lens_input", lstm_hn, ex4, edit=sequence_lens()),
        "onnx_lstm2_hn", 17, ["sequence_lens is graph input 'sequence_lens'; ignored"], feeds_lengths=True)
variant("lstm2_hn_fixed5_sequence_lens5", states_onnx("lstm2_hn_fixed5_sequence_lens5", lstm_hn, ex4, dynamic=False,
                                                      edit=sequence_lens([5], "seq_len_5")),
        "onnx_lstm2_hn", 17, ["sequence_lens is the constant 'seq_len_5' = [5], the graph's fixed sequence length; ignored"])

refuse("onnx_lstm2_hn0", states_onnx("lstm2_hn0", like(lstm_hn, OnnxLSTMHn, "h[0]"), ex4),
       ["Gather node '/Gather' takes h_n[0]", "LSTM node '/rnn/LSTM' (layer 0", "last layer's final state (h_n[-1]"], "onnx", "onnx_states")
refuse("onnx_gru2_hn0_opset11", states_onnx("gru2_hn0_opset11", like(gru_hn, OnnxGRUHn, "h[0]"), ex3, opset=11),
       ["takes h_n[0]", "GRU node '/rnn/GRU' (layer 0", "not a lower layer's"], "onnx", "onnx_states")
refuse("onnx_gru2_hn_all", states_onnx("gru2_hn_all", like(gru_hn, OnnxGRUHn, "h"), ex3),
       ["MatMul node", "reads all of h_n", "h_n[-1]"], "onnx", "onnx_states")
refuse("onnx_lstm2_cn_last", states_onnx("lstm2_cn_last", like(lstm_hn, OnnxLSTMHn, "h[-1]", True), ex4),
       ["reads c_n", "cell states", "hidden state"], "onnx", "onnx_states")
refuse("onnx_lstm2_sequence_lens_const", states_onnx("lstm2_sequence_lens_const", lstm_hn, ex4, edit=sequence_lens([3], "seq_len_3")),
       ["sequence_lens is the constant 'seq_len_3' = [3]", "stops every sequence after 3 steps"], "onnx", "onnx_states")
refuse("onnx_lstm2_fixed5_sequence_lens4", states_onnx("lstm2_fixed5_sequence_lens4", lstm_hn, ex4, dynamic=False,
                                                       edit=sequence_lens([4], "seq_len_4")),
       ["'seq_len_4' = [4]", "shorter than the graph's fixed sequence length 5"], "onnx", "onnx_states")

versions = {"python": sys.version.split()[0], "torch": torch.__version__, "keras": keras.__version__, "keras_backend": keras.backend.backend(),
            "onnx": onnx.__version__, "onnxruntime": ort.__version__, "safetensors": safetensors.__version__, "h5py": h5py.__version__,
            "numpy": np.__version__}
try:
    import onnxscript
    versions["onnxscript"] = onnxscript.__version__
except ImportError:
    pass
manifest = {"description": "recurd-export fixtures made by generate.py; tolerance of the tests: 2e-5",
            "versions": versions, "cases": cases, "refuse": refusals, "variants": variants}
if ONLY:
    # Only some entries made again: keep the others (and the versions that made them).
    with open(os.path.join(HERE, "manifest.json")) as fh:
        old = json.load(fh)
    for key in ("cases", "refuse", "variants"):
        made = {e["name"]: e for e in manifest[key]}
        changed = {k: v for k, v in versions.items() if old["versions"].get(k) != v}
        if changed:
            for e in made.values():
                e["versions"] = changed
        kept = [made.pop(e["name"], e) for e in old.get(key, [])]
        manifest[key] = kept + list(made.values())
    manifest["versions"] = old["versions"]
with open(os.path.join(HERE, "manifest.json"), "w") as fh:
    json.dump(manifest, fh, indent=1, ensure_ascii=False)
    fh.write("\n")
print("versions:", versions)
