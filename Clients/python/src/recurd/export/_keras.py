"""Keras 3 ``.keras`` files → recurd models.

Maps ``[Embedding] → LSTM|GRU … → Dense(linear|softmax|sigmoid)`` (Sequential or a linear
Functional chain). Keras keeps kernels as (in, G·H): transposed here. LSTM gates i, f, c, o are
recurd's i, f, g, o (same order); its single bias goes to ``bias_ih`` and ``bias_hh`` is zero. GRU
gates z, r, h are reordered to r, z, n; only ``reset_after=True`` is recurd's (PyTorch's) GRU, and
its (2, 3H) bias splits into ``bias_ih`` (row 0) and ``bias_hh`` (row 1).
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from ..modelfile import Model
from ._common import KERAS_GRU, KERAS_LSTM, CheckResult, Conversion, ExportError, build_model, compare, permute_gates, random_inputs, resolve_head
from ._hdf5 import HDF5Unsupported, read_hdf5_any

# Identity at inference: skipped.
INFERENCE_IDENTITY = {"Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization"}


def _snake(name: str) -> str:  # keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _activation(v: Any) -> str:
    if v is None:
        return "linear"
    if isinstance(v, dict):
        v = v.get("config", {}).get("name") or v.get("class_name", "")
    return str(v)


def _inbound(layer: Dict[str, Any]) -> List[str]:
    """Names of the layers feeding a Functional layer."""
    names = []
    def walk(o):
        if isinstance(o, dict):
            if "keras_history" in o.get("config", {}):
                names.append(o["config"]["keras_history"][0])
            else:
                for v in o.values():
                    walk(v)
        elif isinstance(o, list):
            if len(o) >= 3 and isinstance(o[0], str) and isinstance(o[1], int) and isinstance(o[2], int):  # Keras 2 style
                names.append(o[0])
            else:
                for v in o:
                    walk(v)
    walk(layer.get("inbound_nodes", []))
    return names


def _layers(config: Dict[str, Any], where: str):
    cls = config.get("class_name")
    cfg = config.get("config", {})
    if cls not in ("Sequential", "Functional", "Model"):
        raise ExportError(f"{where}: the model is a {cls}; recurd-export reads Sequential models and linear Functional chains")
    layers = cfg.get("layers", [])
    if cls != "Sequential":
        # A chain: each layer fed by exactly the one before it.
        prev = None
        for layer in layers:
            name = layer.get("config", {}).get("name") or layer.get("name")
            inb = _inbound(layer)
            if layer["class_name"] == "InputLayer":
                if prev is not None:
                    raise ExportError(f"{where}: several inputs (layer '{name}'); recurd models take one input")
            elif inb != [prev]:
                raise ExportError(f"{where}: layer '{name}' is fed by {inb or 'nothing'}, not by '{prev}'; "
                                  "only a straight chain of layers maps to recurd")
            prev = name
    return cls, layers


def _h5_paths(cls: str, layers: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Candidate weight-file group names per layer. Keras 3 names them by class (snake case) with
    a counter, in the order of ``model.layers`` (which leaves out a Sequential's InputLayer)."""
    out = []
    for include_inputs in ((False, True) if cls == "Sequential" else (True, False)):
        used: Dict[str, int] = {}
        names = {}
        for layer in layers:
            if layer["class_name"] == "InputLayer" and not include_inputs:
                continue
            base = _snake(layer["class_name"])
            if base in used:
                used[base] += 1
                base = f"{base}_{used[base]}"
            else:
                used[base] = 0
            names[layer["config"]["name"]] = f"layers/{base}"
        out.append(names)
    return out


def _var(weights: Dict[str, np.ndarray], group: str, index: int, what: str, layer: str) -> np.ndarray:
    for path in (f"{group}/vars/{index}", f"{group}/cell/vars/{index}"):
        if path in weights:
            return np.asarray(weights[path], np.float32)
    raise ExportError(f"layer '{layer}': its {what} ({group}/…/vars/{index}) is not in model.weights.h5")


def convert_keras(path: str, head: Optional[str] = None, **_: Any) -> Conversion:
    where = os.path.basename(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, FileNotFoundError, IsADirectoryError) as e:
        if str(path).endswith(".h5"):
            raise ExportError(f"{where}: legacy HDF5 Keras models are not read; load it in Keras 3 and save it as .keras") from None
        raise ExportError(f"{where}: not a Keras 3 .keras file ({e})") from None
    with zf:
        names = zf.namelist()
        if "config.json" not in names:
            raise ExportError(f"{where}: no config.json (not a Keras 3 .keras file)")
        config = json.loads(zf.read("config.json"))
        if "model.weights.h5" not in names:
            raise ExportError(f"{where}: no model.weights.h5 (sharded or unusual weights; re-save with model.save(path))")
        try:
            weights = read_hdf5_any(zf.read("model.weights.h5"))
        except HDF5Unsupported as e:
            raise ExportError(f"{where}: cannot read model.weights.h5: {e}") from None
        except Exception as e:  # a damaged file: whatever the reader (ours or h5py) tripped on
            raise ExportError(f"{where}: model.weights.h5 is damaged ({type(e).__name__}: {e})") from None
        meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}

    cls, layers = _layers(config, where)
    notes: List[str] = []
    embed = None
    cell = None
    rnn: List[Dict[str, Any]] = []
    dense = None
    activation_layer = None
    for i, layer in enumerate(layers):
        lc, lcfg = layer["class_name"], layer.get("config", {})
        name = lcfg.get("name", lc)
        if lc == "InputLayer":
            continue
        dtype = lcfg.get("dtype")
        policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
        if isinstance(policy, str) and "16" in policy:
            notes.append(f"layer '{name}' computes in {policy}; recurd computes in float32, so the check differs by "
                         "float16 rounding (about 1e-3): pass --tolerance 1e-2 if that is all")
        if lc in INFERENCE_IDENTITY:
            notes.append(f"skipped layer '{name}' ({lc}: identity at inference)")
            continue
        if lc == "Embedding":
            if rnn or embed is not None:
                raise ExportError(f"layer '{name}' (Embedding): only a first layer may be an embedding")
            if lcfg.get("mask_zero"):
                raise ExportError(f"layer '{name}' (Embedding): mask_zero=True skips token 0 steps; recurd steps on every token")
            embed = layer
            continue
        if lc in ("LSTM", "GRU"):
            if dense is not None:
                raise ExportError(f"layer '{name}' ({lc}) comes after the dense head '{dense['config']['name']}'; "
                                  "recurd models are [embedding] → recurrent layers → one dense head")
            if cell is not None and cell != lc:
                raise ExportError(f"layer '{name}' is a {lc} after {cell} layers; recurd stacks one cell kind")
            cell = lc
            for key, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
                got = _activation(lcfg.get(key, want))
                if got != want:
                    raise ExportError(f"layer '{name}' ({lc}): {key}='{got}'; recurd's {lc} uses {want}")
            if lcfg.get("go_backwards"):
                raise ExportError(f"layer '{name}' ({lc}): go_backwards=True runs the sequence in reverse; not a streaming model")
            if lcfg.get("return_state"):
                raise ExportError(f"layer '{name}' ({lc}): return_state=True is not a plain stacked layer")
            if lc == "GRU" and not lcfg.get("reset_after", True):
                raise ExportError(f"layer '{name}' (GRU): reset_after=False applies the reset gate before the recurrent "
                                  "product; recurd's GRU is PyTorch's (reset_after=True) and cannot represent it exactly")
            if rnn and not rnn[-1]["config"].get("return_sequences"):
                raise ExportError(f"layer '{rnn[-1]['config']['name']}' feeds '{name}' without return_sequences=True")
            rnn.append(layer)
            continue
        if lc == "Dense":
            if not rnn:
                raise ExportError(f"layer '{name}' (Dense) comes before any recurrent layer; recurd applies one dense head "
                                  "after the recurrent layers")
            if dense is not None:
                raise ExportError(f"layer '{dense['config']['name']}' (Dense, {_activation(dense['config'].get('activation'))}) lies "
                                  f"between the recurrent layers and the head '{name}'; recurd has a single dense head, nothing in between")
            dense = layer
            continue
        if lc in ("Activation", "Softmax") and dense is not None and activation_layer is None:
            activation_layer = layer
            continue
        if lc == "Bidirectional":
            raise ExportError(f"layer '{name}' (Bidirectional) reads the sequence backwards too; not a streaming model")
        if lc == "TimeDistributed" and lcfg.get("layer", {}).get("class_name") == "Dense":
            raise ExportError(f"layer '{name}' (TimeDistributed(Dense)) is not read; a plain Dense does the same in Keras 3 "
                              "(it applies to every step of a sequence): rebuild the model with Dense, copy the weights, save it")
        raise ExportError(f"layer '{name}' ({lc}) has no place in a recurd model ([embedding] → LSTM/GRU layers → dense head)")
    if not rnn:
        raise ExportError(f"{where}: no LSTM or GRU layer")
    if dense is None:
        raise ExportError(f"{where}: no Dense head after the recurrent layers")
    dcfg = dense["config"]
    source_head = _activation(dcfg.get("activation"))
    if activation_layer is not None:
        act = "softmax" if activation_layer["class_name"] == "Softmax" else _activation(activation_layer["config"].get("activation"))
        if activation_layer["class_name"] == "Softmax" and activation_layer["config"].get("axis", -1) not in (-1, None):
            raise ExportError(f"layer '{activation_layer['config']['name']}' (Softmax) is not over the last axis")
        if source_head != "linear":
            raise ExportError(f"layer '{activation_layer['config']['name']}' applies {act} after the dense head's {source_head}")
        source_head = act
    if source_head not in ("linear", "softmax", "sigmoid"):
        raise ExportError(f"layer '{dcfg['name']}' (Dense): activation '{source_head}'; recurd heads are linear, softmax or sigmoid")
    out_head = resolve_head(source_head, head, f"layer '{dcfg['name']}'", notes)

    last_error = None
    for group_of in _h5_paths(cls, layers):
        try:
            layer_weights = []
            for layer in rnn:
                lname = layer["config"]["name"]
                units = int(layer["config"]["units"])
                g = group_of[lname]
                kernel = _var(weights, g, 0, "kernel", lname)
                recurrent = _var(weights, g, 1, "recurrent kernel", lname)
                if layer["class_name"] == "LSTM":
                    G, order = 4, KERAS_LSTM
                    bias = _var(weights, g, 2, "bias", lname) if layer["config"].get("use_bias", True) else np.zeros(4 * units, np.float32)
                    if bias.shape != (4 * units,):
                        raise ExportError(f"layer '{lname}' (LSTM): bias has shape {bias.shape}, expected ({4 * units},)")
                    b_ih, b_hh = bias, np.zeros_like(bias)
                else:
                    G, order = 3, KERAS_GRU
                    if layer["config"].get("use_bias", True):
                        bias = _var(weights, g, 2, "bias", lname)
                        if bias.shape != (2, 3 * units):
                            raise ExportError(f"layer '{lname}' (GRU): bias has shape {bias.shape}, expected (2, {3 * units}) for reset_after=True")
                        b_ih, b_hh = bias[0], bias[1]
                    else:
                        b_ih = b_hh = np.zeros(3 * units, np.float32)
                if kernel.shape[1] != G * units or recurrent.shape != (units, G * units):
                    raise ExportError(f"layer '{lname}': kernel {kernel.shape} / recurrent kernel {recurrent.shape} do not fit {units} units")
                layer_weights.append((permute_gates(kernel.T, order, G), permute_gates(recurrent.T, order, G),
                                      permute_gates(b_ih, order, G), permute_gates(b_hh, order, G)))
            dname = dcfg["name"]
            dk = _var(weights, group_of[dname], 0, "kernel", dname)
            db = _var(weights, group_of[dname], 1, "bias", dname) if dcfg.get("use_bias", True) else np.zeros(dk.shape[1], np.float32)
            emb = None
            if embed is not None:
                emb = _var(weights, group_of[embed["config"]["name"]], 0, "embeddings", embed["config"]["name"])
            break
        except (ExportError, KeyError) as e:
            last_error = e
    else:
        raise ExportError(f"{where}: {last_error}")

    model = build_model(where, cell.lower(), layer_weights, dk.T, db, head=out_head, embed=emb,
                  metadata={"source": f"keras {meta.get('keras_version', '?')}: {where}"})
    conv = Conversion(model=model, source=f"keras {meta.get('keras_version', '')}".strip(), notes=notes)
    try:
        _choose_backend()
        import keras  # noqa: F401
    except Exception as e:  # keras missing, or its backend missing
        conv.unchecked_reason = "keras is not installed" if isinstance(e, ImportError) and "keras" in str(e) else f"keras cannot be loaded ({e})"
    else:
        conv.checker = lambda steps, seed: _check(path, model, source_head, steps, seed)
    return conv


def _choose_backend() -> None:
    """Keras uses KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow. When the backend so
    chosen is not installed (and KERAS_BACKEND is not set), use one that is: torch, then jax."""
    import importlib.util
    import json as _json
    if "KERAS_BACKEND" in os.environ:
        return
    wanted = "tensorflow"
    try:
        with open(os.path.expanduser("~/.keras/keras.json")) as fh:
            wanted = _json.load(fh).get("backend", wanted)
    except (OSError, ValueError):
        pass
    if importlib.util.find_spec(wanted) is not None:
        return
    for name in ("torch", "jax", "tensorflow"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


def _check(path: str, model: Model, source_head: str, steps: int, seed: int) -> CheckResult:
    import keras
    km = keras.saving.load_model(path, compile=False)
    x = random_inputs(model, steps, seed)
    outs = []
    for t in range(1, steps + 1):
        for layer in km.layers:  # stateful layers: every prefix starts from a zero state
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
                layer.reset_state()
        batch = x[None, :t].astype(np.int32 if model.embed is not None else np.float32)
        y = keras.ops.convert_to_numpy(km(batch, training=False))
        outs.append(np.asarray(y, np.float64).reshape(-1, model.output_size)[-1])
    diff = compare(model, x, np.array(outs), source_head)
    return CheckResult(f"keras {keras.__version__} ({keras.backend.backend()} backend)", steps, diff)
