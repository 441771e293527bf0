"""recurd.export on the committed fixtures (Tests/Fixtures/export), with numpy alone: the sources
made by Keras, PyTorch and ONNX convert to the committed model files, and those reproduce the
frameworks' step-wise outputs within 2e-5 (recurd.reference; and the daemon's `recurd run` when
the binary is there). Models the converter must refuse are refused with a message naming the
layer or node."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import EXPORT, REFERENCE, load_manifest, needs_daemon, recurd
from recurd import reference
from recurd.export import ExportError, convert, main
from recurd.export._hdf5 import read_hdf5
from recurd.export._onnxproto import load_onnx
from recurd.export._torchfile import flatten, load_torch_file
from recurd.modelfile import Model, ModelFileError, read_safetensors, write_safetensors

TOL = 2e-5
MANIFEST = load_manifest(os.path.join(EXPORT, "manifest.json"))
CASES = [c["name"] for c in MANIFEST["cases"]]


def case(name):
    with open(os.path.join(EXPORT, name, "case.json")) as fh:
        return json.load(fh)


def test_fixtures_cover_every_source():
    names = set(CASES)
    for prefix in ("keras_", "torch_", "onnx_"):
        assert any(n.startswith(prefix) for n in names)
    kinds = {(case(n)["model"]["cell"], case(n)["model"]["input"], case(n)["model"]["head"]) for n in names}
    assert {k[0] for k in kinds} == {"lstm", "gru"} and {k[1] for k in kinds} == {"features", "tokens"}
    assert {k[2] for k in kinds} == {"linear", "softmax", "sigmoid"}


@pytest.mark.parametrize("name", CASES)
def test_conversion_reproduces_the_committed_model(name, tmp_path):
    c = case(name)
    options = {k: v for k, v in c["convert"].items() if k not in ("source", "head")}
    conv = convert(os.path.join(EXPORT, name, c["source_file"]), c["convert"]["source"], c["convert"].get("head"), **options)
    committed = Model.load(os.path.join(EXPORT, name, "model.safetensors"))
    ours, theirs = conv.model.tensors(), committed.tensors()
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    assert conv.model.file_metadata() == committed.metadata
    out = tmp_path / "m.safetensors"
    conv.model.save(str(out))
    assert out.read_bytes() == open(os.path.join(EXPORT, name, "model.safetensors"), "rb").read()


@pytest.mark.parametrize("name", CASES)
def test_exported_model_matches_the_framework_stepwise(name):
    c = case(name)
    m = Model.load(os.path.join(EXPORT, name, "model.safetensors"))
    assert (m.cell, m.hidden, m.input, m.head, m.output_size) == (c["model"]["cell"], c["model"]["hidden"], c["model"]["input"],
                                                                   c["model"]["head"], c["model"]["outputs"])
    x = c["input"] if m.input == "tokens" else np.array(c["input"], np.float32)
    expected = np.array(c["expected"], np.float64)
    got = reference.run(m, x)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < TOL
    # float32 arithmetic too (as an engine would do it)
    assert np.max(np.abs(reference.run(m, x, dtype=np.float32) - expected)) < TOL


@needs_daemon
@pytest.mark.parametrize("name", [n for n in CASES if glob.glob(os.path.join(EXPORT, n, "input.*"))])
def test_daemon_runs_exported_models_like_the_framework(name):
    """`recurd run` (the Swift engine) on the exported file gives the framework's outputs."""
    d = os.path.join(EXPORT, name)
    args = ["run", "--model", os.path.join(d, "model.safetensors")]
    if os.path.exists(os.path.join(d, "input.csv")):
        args += ["--input", os.path.join(d, "input.csv")]
    else:
        args += ["--input", os.path.join(d, "input.txt"), "--format", "text"]
    out = recurd(*args).stdout
    got = np.array([[float(v) for v in line.split(",")] for line in out.strip().splitlines()])
    expected = np.array(case(name)["expected"])
    assert got.shape == expected.shape and np.max(np.abs(got - expected)) < TOL


@pytest.mark.parametrize("entry", MANIFEST["refuse"], ids=lambda e: e["name"])
def test_unmappable_models_are_refused_by_name(entry):
    with pytest.raises(ExportError) as e:
        convert(os.path.join(EXPORT, entry["file"]), entry["source"])
    for w in entry["words"]:
        assert w in str(e.value)


def test_builtin_readers_read_the_framework_files():
    # HDF5 inside .keras
    import zipfile
    with zipfile.ZipFile(os.path.join(EXPORT, "keras_lstm2_softmax", "source.keras")) as zf:
        tree = read_hdf5(zf.read("model.weights.h5"))
    assert tree["layers/lstm/cell/vars/0"].shape == (4, 64) and tree["layers/dense/vars/1"].shape == (5,)
    # torch.save zip
    sd = flatten(load_torch_file(os.path.join(EXPORT, "torch_embed_lstm_softmax", "source.pt")))
    assert sd["model.embedding.weight"].shape == (300, 6) and sd["model.lstm2.weight_hh_l0"].shape == (32, 8)
    # ONNX, with external data
    g = load_onnx(os.path.join(EXPORT, "onnx_gru2_sigmoid", "source.onnx"))
    assert [n.op_type for n in g.nodes].count("GRU") == 2


def test_cli(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    src = os.path.join(EXPORT, "torch_gru2_softmax_safetensors", "source.safetensors")
    assert main(["--from", "pytorch", src, "--head", "softmax", "-o", str(out), "--no-check"]) == 0
    assert Model.load(str(out)).head == "softmax"
    assert "wrote" in capsys.readouterr().out
    bad = os.path.join(EXPORT, "refuse", "torch_bidirectional.pt")
    assert main([bad, "-o", str(tmp_path / "x.safetensors")]) == 1
    assert "bidirectional" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    # python -m recurd.export, as documented
    r = subprocess.run([sys.executable, "-m", "recurd.export", "--from", "keras", os.path.join(EXPORT, "keras_gru2_sigmoid", "source.keras"),
                        "-o", str(tmp_path / "k.safetensors"), "--no-check"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
    assert r.returncode == 0, r.stderr
    assert "gru 12,6" in r.stdout


def test_cli_errors_are_one_line(tmp_path, capsys):
    committed = os.path.join(EXPORT, "torch_lstm2_prefix", "model.safetensors")
    # A recurd model file is not a state dict to convert (it used to lose its head quietly).
    assert main(["--from", "pytorch", committed, "-o", str(tmp_path / "again.safetensors"), "--no-check"]) == 1
    assert "already a recurd model file" in capsys.readouterr().err
    assert not (tmp_path / "again.safetensors").exists()
    src = os.path.join(EXPORT, "torch_gru2_softmax_safetensors", "source.safetensors")
    # An unwritable output is an error line, not a traceback.
    assert main([src, "--from", "pytorch", "-o", str(tmp_path / "no" / "dir" / "m.safetensors"), "--no-check"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot write")
    for bad in ("0", "-3", "x"):
        with pytest.raises(SystemExit) as e:
            main([src, "--check-steps", bad, "-o", str(tmp_path / "m.safetensors")])
        assert e.value.code == 2
        assert "at least 1" in capsys.readouterr().err


def test_pytorch_options_and_errors(tmp_path):
    src = os.path.join(EXPORT, "torch_lstm2_prefix", "source.pt")
    conv = convert(src, "pytorch", None, rnn_prefix="encoder.rnn.", head_prefix="fc.")
    assert conv.model.hidden == [16, 16] and conv.model.head == "linear"
    with pytest.raises(ExportError, match="no nn.LSTM/nn.GRU"):
        convert(src, "pytorch", rnn_prefix="nothing.")
    with pytest.raises(ExportError, match="ends in softmax"):
        convert(os.path.join(EXPORT, "keras_lstm2_softmax", "source.keras"), "keras", "sigmoid")
    # a state dict with an extra Linear is refused, and --ignore is the way out for other objects
    tensors, _ = read_safetensors(os.path.join(EXPORT, "torch_gru2_softmax_safetensors", "source.safetensors"))
    tensors["aux.weight"] = np.zeros((2, 10), np.float32)
    tensors["aux.bias"] = np.zeros(2, np.float32)
    p = str(tmp_path / "sd.safetensors")
    write_safetensors(p, tensors)
    with pytest.raises(ExportError, match="several candidate heads"):
        convert(p, "pytorch")
    assert convert(p, "pytorch", head_prefix="head.", ignore=["aux."]).model.output_size == 4
    # prefixes name modules with or without the trailing dot; a unique suffix finds a nested module
    assert convert(p, "pytorch", head_prefix="head", ignore=["aux"]).model.output_size == 4
    conv = convert(src, "pytorch", None, rnn_prefix="rnn", head_prefix="fc")
    assert conv.model.hidden == [16, 16]
    with pytest.raises(ExportError, match="no nn.Linear module 'nothing'; candidates: fc"):
        convert(src, "pytorch", head_prefix="nothing")
    # weights the model file refuses (non-finite) are an ExportError naming the source, not a traceback
    bad = dict(tensors)
    bad[next(k for k in bad if "weight_hh" in k)] = np.full_like(bad[next(k for k in bad if "weight_hh" in k)], np.nan)
    p = str(tmp_path / "nan.safetensors")
    write_safetensors(p, bad)
    with pytest.raises(ExportError, match="nan.safetensors.*not valid.*non-finite"):
        convert(p, "pytorch", head_prefix="head.", ignore=["aux."])


def test_model_file_checks(tmp_path):
    m = Model.load(os.path.join(EXPORT, "torch_lstm2_prefix", "model.safetensors"))
    data = m.save(None)
    assert Model.load(data).tensors().keys() == m.tensors().keys()
    with pytest.raises(ModelFileError, match="truncated|does not fit|outside"):
        Model.load(data[:-10])
    with pytest.raises(ModelFileError, match="4 bytes no tensor owns follow the data"):
        Model.load(data + b"\0\0\0\0")
    t = m.tensors()
    t["head.weight"] = t["head.weight"][:, :3]
    with pytest.raises(ModelFileError, match="head.weight"):
        Model(m.cell, m.layers, t["head.weight"], t["head.bias"])
    bad = dict(m.tensors())
    bad["rnn.bias_hh_l1"] = np.full_like(bad["rnn.bias_hh_l1"], np.nan)
    p = str(tmp_path / "nan.safetensors")
    write_safetensors(p, bad, m.file_metadata())
    with pytest.raises(ModelFileError, match="rnn.bias_hh_l1: non-finite"):
        Model.load(p)


def _reference_cases():
    path = os.path.join(REFERENCE, "cases.json")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return json.load(fh)


@pytest.mark.parametrize("c", _reference_cases(), ids=lambda c: c["name"])
def test_reference_maths_match_the_pytorch_reference_fixtures(c):
    """recurd.reference against Tests/Fixtures/reference (an independent PyTorch implementation)."""
    d = os.path.join(REFERENCE, "forward", c["name"])
    m = Model.load(os.path.join(d, "model.safetensors"))
    if c["input"] == "tokens":
        with open(os.path.join(REFERENCE, c["input_file"]), "rb") as fh:
            x = list(fh.read())[: c["steps"]]
    else:
        import csv
        with open(os.path.join(REFERENCE, c["input_file"])) as fh:
            rows = list(csv.DictReader(fh))
        cols = c.get("columns") or [k for k in rows[0] if k != "timestamp"]
        x = np.array([[float(r[k]) for k in cols] for r in rows[: c["steps"]]], np.float32)
    expected = np.loadtxt(os.path.join(d, "expected.csv"), delimiter=",", ndmin=2)
    got = reference.run(m, x)
    assert np.max(np.abs(got - expected)) < TOL


def _lstm(rng, prefix, n_in, h):
    return {f"{prefix}weight_ih_l0": rng.standard_normal((4 * h, n_in)).astype(np.float32),
            f"{prefix}weight_hh_l0": rng.standard_normal((4 * h, h)).astype(np.float32),
            f"{prefix}bias_ih_l0": rng.standard_normal(4 * h).astype(np.float32),
            f"{prefix}bias_hh_l0": rng.standard_normal(4 * h).astype(np.float32)}


def test_pytorch_several_modules_need_their_order(tmp_path):
    """A state dict does not record how forward() joins separate RNN modules (registered as
    `second` before `first`, run first → second; or an encoder–decoder): never guessed."""
    rng = np.random.default_rng(3)
    tensors = {**_lstm(rng, "second.", 6, 6), **_lstm(rng, "first.", 6, 6),
               "fc.weight": rng.standard_normal((2, 6)).astype(np.float32), "fc.bias": np.zeros(2, np.float32)}
    p = str(tmp_path / "two.safetensors")
    write_safetensors(p, tensors)
    with pytest.raises(ExportError, match=r"2 separate nn.LSTM/nn.GRU modules \(first, second\).*--stack NAME,NAME"):
        convert(p, "pytorch")
    conv = convert(p, "pytorch", stack=["first", "second"])
    np.testing.assert_array_equal(conv.model.layers[0][0], tensors["first.weight_ih_l0"])
    np.testing.assert_array_equal(conv.model.layers[1][0], tensors["second.weight_ih_l0"])
    assert any("first → second" in n for n in conv.notes)
    with pytest.raises(ExportError, match="must name each of the modules"):
        convert(p, "pytorch", stack=["first"])
    with pytest.raises(ExportError, match="must name each of the modules"):
        convert(p, "pytorch", stack=["first", "first"])
    # one module alone is still --rnn-prefix's job (the other left out)
    assert convert(p, "pytorch", rnn_prefix="first", ignore=["second"]).model.hidden == [6]
    # the command line takes the order as a comma-separated list
    out = tmp_path / "m.safetensors"
    assert main([p, "--from", "pytorch", "--stack", "first,second", "-o", str(out), "--no-check"]) == 0
    np.testing.assert_array_equal(Model.load(str(out)).layers[0][1], tensors["first.weight_hh_l0"])


def test_pytorch_bias_free_linear_in_front_is_not_an_embedding(tmp_path):
    """nn.Linear(4, 4, bias=False) → nn.GRU(4, …) has an embedding's tensors: refused unless
    --embed-prefix says it is one; a module named like an embedding is taken as one."""
    rng = np.random.default_rng(4)
    gru = {"rnn.weight_ih_l0": rng.standard_normal((18, 4)).astype(np.float32), "rnn.weight_hh_l0": rng.standard_normal((18, 6)).astype(np.float32),
           "fc.weight": rng.standard_normal((3, 6)).astype(np.float32), "fc.bias": np.zeros(3, np.float32)}
    p = str(tmp_path / "inp.safetensors")
    write_safetensors(p, {"inp.weight": rng.standard_normal((4, 4)).astype(np.float32), **gru})
    with pytest.raises(ExportError, match=r"'inp.weight' \(4×4\).*--embed-prefix inp"):
        convert(p, "pytorch")
    assert convert(p, "pytorch", embed_prefix="inp").model.input == "tokens"
    q = str(tmp_path / "emb.safetensors")
    write_safetensors(q, {"embedding.weight": rng.standard_normal((40, 4)).astype(np.float32), **gru})
    assert convert(q, "pytorch").model.vocabulary == 40


def _torch_zip(path, monkeypatch, offset, size, stride, storage_floats=4):
    """A torch.save zip holding {'w': tensor}, written without torch: the pickle names
    torch._utils._rebuild_tensor_v2 and torch.FloatStorage as torch.save does."""
    import collections
    import io
    import pickle
    import types
    import zipfile
    utils, torch_mod = types.ModuleType("torch._utils"), types.ModuleType("torch")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2, torch_mod.FloatStorage = _rebuild_tensor_v2, FloatStorage
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    storage = object()

    class Tensor:
        def __reduce__(self):
            return _rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", storage_floats) if obj is storage else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(collections.OrderedDict(w=Tensor()))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/data/0", np.arange(storage_floats, dtype="<f4").tobytes())
    monkeypatch.undo()


@pytest.mark.parametrize("offset,size,stride,says", [
    (0, (2, 2), (2, 1), None),                            # a well-formed tensor reads back
    (0, (4, 1), (536870912, 1), "reaches element"),       # a huge stride (it crashed the reader)
    (0, (4, 1), (255, 1), "reaches element"),             # a stride past the storage (it read the heap)
    (255, (4, 1), (1, 1), "reaches element"),             # an offset past the storage
    (0, (2, 2), (2,), "layout is invalid"),
    (0, (2, 2), (-1, 1), "layout is invalid"),
])
def test_torch_files_whose_tensors_lie_about_their_layout_are_refused(tmp_path, monkeypatch, offset, size, stride, says):
    p = str(tmp_path / "t.pt")
    _torch_zip(p, monkeypatch, offset, size, stride)
    if says is None:
        np.testing.assert_array_equal(flatten(load_torch_file(p))["w"], np.arange(4, dtype=np.float32).reshape(2, 2))
        return
    with pytest.raises(ValueError, match=says):
        load_torch_file(p)


def test_residual_models_add_the_input_back():
    """metadata forecast=residual (recurd init --residual): prediction = features + head."""
    rng = np.random.default_rng(5)
    layer = (rng.standard_normal((9, 2)), rng.standard_normal((9, 3)), np.zeros(9), np.zeros(9))
    hw, hb = rng.standard_normal((2, 3)), rng.standard_normal(2)
    level = Model("gru", [layer], hw, hb)
    residual = Model("gru", [layer], hw, hb, metadata={"forecast": "residual"})
    assert residual.residual and not level.residual and "(residual)" in residual.describe()
    x = rng.standard_normal((7, 2)).astype(np.float32)
    np.testing.assert_allclose(reference.run(residual, x), reference.run(level, x) + x, rtol=0, atol=1e-12)
    assert Model.load(residual.save(None)).residual
    with pytest.raises(ModelFileError, match="as many outputs as inputs"):
        Model("gru", [layer], hw[:1], hb[:1], metadata={"forecast": "residual"})
    with pytest.raises(ModelFileError, match="forecast is 'trend'"):
        Model("gru", [layer], hw, hb, metadata={"forecast": "trend"})


@needs_daemon
def test_reference_runs_a_trained_residual_model_as_recurd_run_does(tmp_path):
    m, tuned, data = str(tmp_path / "m.safetensors"), str(tmp_path / "t.safetensors"), tmp_path / "x.csv"
    recurd("init", "--cell", "lstm", "--hidden", "8", "--input-size", "2", "--output-size", "2", "--head", "linear", "--residual",
           "--seed", "3", "-o", m)
    t = np.arange(200)
    rows = np.stack([np.sin(t * 0.3), np.cos(t * 0.17)], 1).astype(np.float32)
    data.write_text("a,b\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in rows))
    recurd("fit", "--model", m, "--input", str(data), "--k1", "4", "--k2", "8", "--optimizer", "adam", "--lr", "0.01", "--clip", "1",
           "--save", tuned)
    model = Model.load(tuned)
    assert model.residual and np.abs(model.head_weight).max() > 0   # trained away from persistence
    out = recurd("run", "--model", tuned, "--input", str(data)).stdout
    got = np.array([[float(v) for v in line.split(",")] for line in out.strip().splitlines()])
    x = np.array([[float(v) for v in line.split(",")] for line in data.read_text().splitlines()[1:]], np.float32)
    assert np.max(np.abs(reference.run(model, x, dtype=np.float32) - got)) < 1e-5


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_weights_file_inside_a_keras_archive_is_an_export_error(tmp_path, damage):
    import zipfile
    src = os.path.join(EXPORT, "keras_lstm2_softmax", "source.keras")
    bad = str(tmp_path / "bad.keras")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            d = zin.read(n)
            if n == "model.weights.h5":
                d = d[: len(d) // 3] if damage == "truncated" else d[:8] + bytes(range(256)) * (len(d) // 256)
            zout.writestr(n, d)
    with pytest.raises(ExportError, match="model.weights.h5"):
        convert(bad, "keras")


def test_a_recurd_model_file_with_f64_tensors_is_refused_as_the_daemon_refuses_it(tmp_path):
    m = Model.load(os.path.join(EXPORT, "torch_lstm2_prefix", "model.safetensors"))
    p = str(tmp_path / "f64.safetensors")
    tensors = {k: v.astype(np.float64) for k, v in m.tensors().items()}
    import json as _json
    import struct as _struct
    header, body = {}, b""
    for k in sorted(tensors):
        raw = tensors[k].astype("<f8").tobytes()
        header[k] = {"dtype": "F64", "shape": list(tensors[k].shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    header["__metadata__"] = m.file_metadata()
    h = _json.dumps(header).encode()
    with open(p, "wb") as fh:
        fh.write(_struct.pack("<Q", len(h)) + h + body)
    with pytest.raises(ModelFileError, match="dtype is F64; recurd reads F32"):
        Model.load(p)
    again = Model.load(p, cast=True)
    np.testing.assert_array_equal(again.head_weight, m.head_weight)
    with pytest.raises(ExportError, match="cannot read.*cast=True"):
        convert(p, "pytorch")
    if os.path.exists(recurd_bin := os.environ.get("RECURD_BIN", "")):
        r = subprocess.run([recurd_bin, "run", "--model", p, "--input", os.path.join(EXPORT, "torch_lstm2_prefix", "input.csv")],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "F64" in r.stderr
