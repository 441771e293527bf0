"""recurd model files (DESIGN §2): safetensors, little-endian float32, read and written with numpy
alone (the ``safetensors`` package is not needed).

    rnn.weight_ih_l{k} (G·H_k, In_k)   rnn.weight_hh_l{k} (G·H_k, H_k)   G = 4 (LSTM i,f,g,o) or 3 (GRU r,z,n)
    rnn.bias_ih_l{k}, rnn.bias_hh_l{k} (G·H_k)
    head.weight (O, H_last), head.bias (O)
    embed.weight (V, E)                 token input only
    __metadata__: format=recurd/1, cell=lstm|gru, input=features|tokens, head=linear|softmax|sigmoid
"""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

FORMAT = "recurd/1"
CELLS = {"lstm": 4, "gru": 3}
HEADS = ("linear", "softmax", "sigmoid")
INPUTS = ("features", "tokens")

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": None, "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?"}


# Tensors a daemon checkpoint carries beside the model's (optimizer moments, standardisation).
_CHECKPOINT_EXTRAS = ("optim.", "norm.")


class ModelFileError(ValueError):
    """A model file that DESIGN §2 does not allow; the message names the file and tensor."""


def read_safetensors(path_or_bytes, *, name: str = "", dtypes: Optional[Dict[str, str]] = None) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Reads a safetensors file (path or bytes) → ({name: array}, metadata). BF16 becomes float32;
    ``dtypes``, when given, receives each tensor's dtype as the file names it."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, name = bytes(path_or_bytes), name or "<bytes>"
    else:
        name = name or str(path_or_bytes)
        with open(path_or_bytes, "rb") as fh:
            data = fh.read()
    if len(data) < 8:
        raise ModelFileError(f"{name}: truncated: {len(data)} bytes, the header length needs 8")
    (n,) = struct.unpack_from("<Q", data)
    if n > 100_000_000 or 8 + n > len(data):
        raise ModelFileError(f"{name}: header of {n} bytes does not fit in a file of {len(data)} bytes")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ModelFileError(f"{name}: the header is not JSON") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name}: the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    tensors = {}
    # As the daemon (and the format's own library): tensors' data in order, each range a whole
    # run of bytes right after the previous one, and nothing after the last.
    spans = []
    for key, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], [int(d) for d in entry["shape"]], entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{name}: tensor '{key}': malformed header entry") from None
        if dtype not in _DTYPES:
            raise ModelFileError(f"{name}: tensor '{key}': dtype {dtype} is not supported")
        if not 0 <= begin <= end <= len(body):
            raise ModelFileError(f"{name}: tensor '{key}': data range {begin}..{end} outside the body of {len(body)} bytes (truncated?)")
        raw = bytes(body[begin:end])
        count = int(np.prod(shape)) if shape else 1
        if dtype == "BF16":
            if len(raw) != 2 * count:
                raise ModelFileError(f"{name}: tensor '{key}': {len(raw)} bytes for {count} BF16 values")
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(_DTYPES[dtype])
            if len(raw) != dt.itemsize * count:
                raise ModelFileError(f"{name}: tensor '{key}': {len(raw)} bytes for {count} {dtype} values")
            a = np.frombuffer(raw, dt)
        tensors[key] = a.reshape(shape).copy()
        spans.append((begin, end, key))
        if dtypes is not None:
            dtypes[key] = dtype
    previous = 0
    for begin, end, key in sorted(spans, key=lambda t: (t[0], t[1])):
        if begin < previous:
            raise ModelFileError(f"{name}: tensor '{key}': data overlaps the previous tensor at byte offset {8 + n + begin}")
        if begin > previous:
            raise ModelFileError(f"{name}: tensor '{key}': {begin - previous} bytes no tensor owns lie before its data")
        previous = end
    if previous != len(body):
        raise ModelFileError(f"{name}: {len(body) - previous} bytes no tensor owns follow the data, at byte offset {8 + n + previous}")
    return tensors, {str(k): str(v) for k, v in meta.items()}


def write_safetensors(path: Optional[str], tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """Writes float32 tensors (sorted by name) with string metadata; the header is padded with
    spaces to a multiple of 8 bytes, as the reference writer does. Returns the bytes; writes them
    to ``path`` atomically when given."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    chunks, offset = [], 0
    for key in sorted(tensors):
        a = np.ascontiguousarray(np.asarray(tensors[key], dtype="<f4"))
        raw = a.tobytes()
        header[key] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    data = struct.pack("<Q", len(h)) + h + b"".join(chunks)
    if path is not None:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return data


class Model:
    """A recurd model in numpy (float32 weights as stored).

    ``layers`` holds per layer ``(weight_ih, weight_hh, bias_ih, bias_hh)`` in recurd's (PyTorch's)
    layout and gate order; ``embed`` is (V, E) for token input, else None.
    """

    def __init__(self, cell: str, layers, head_weight, head_bias, head: str = "linear", embed=None,
                 metadata: Optional[Mapping[str, str]] = None):
        self.cell = cell
        self.layers = [tuple(np.asarray(t, np.float32) for t in layer) for layer in layers]
        self.head_weight = np.asarray(head_weight, np.float32)
        self.head_bias = np.asarray(head_bias, np.float32)
        self.head = head
        self.embed = None if embed is None else np.asarray(embed, np.float32)
        self.metadata = dict(metadata or {})
        self.validate()

    # --- shapes
    @property
    def input(self) -> str:
        return "tokens" if self.embed is not None else "features"

    @property
    def gates(self) -> int:
        return CELLS[self.cell]

    @property
    def hidden(self) -> list:
        return [l[1].shape[1] for l in self.layers]

    @property
    def input_size(self) -> int:
        return self.layers[0][0].shape[1]

    @property
    def output_size(self) -> int:
        return self.head_weight.shape[0]

    @property
    def residual(self) -> bool:
        """Whether the head predicts the change of its input (metadata ``forecast=residual``, as
        ``recurd init --residual`` writes): the prediction is the step's features plus the head's
        output."""
        return self.metadata.get("forecast", "level") == "residual"

    @property
    def vocabulary(self) -> Optional[int]:
        return None if self.embed is None else self.embed.shape[0]

    def describe(self) -> str:
        inp = f"tokens {self.embed.shape[0]}×{self.embed.shape[1]}" if self.embed is not None else f"features {self.input_size}"
        return f"{self.cell} {','.join(map(str, self.hidden))}, input {inp}, head {self.head} {self.output_size}" + (" (residual)" if self.residual else "")

    def validate(self) -> None:
        """Raises ModelFileError naming the tensor that does not fit DESIGN §2."""
        if self.cell not in CELLS:
            raise ModelFileError(f"unknown cell '{self.cell}' (expected lstm or gru)")
        if self.head not in HEADS:
            raise ModelFileError(f"unknown head '{self.head}' (expected linear, softmax or sigmoid)")
        if not self.layers:
            raise ModelFileError("rnn.weight_ih_l0: missing (the model has no recurrent layer)")
        g = self.gates
        prev = self.embed.shape[1] if self.embed is not None else self.layers[0][0].shape[1]
        if self.embed is not None and self.embed.ndim != 2:
            raise ModelFileError(f"embed.weight: rank {self.embed.ndim}, expected 2")
        for k, (wih, whh, bih, bhh) in enumerate(self.layers):
            if whh.ndim != 2 or whh.shape[0] != g * whh.shape[1]:
                raise ModelFileError(f"rnn.weight_hh_l{k}: shape {list(whh.shape)} should be [{g}·H, H] for {self.cell.upper()}")
            h = whh.shape[1]
            if wih.shape != (g * h, prev):
                raise ModelFileError(f"rnn.weight_ih_l{k}: shape {list(wih.shape)} should be [{g * h}, {prev}]")
            for nm, b in (("bias_ih", bih), ("bias_hh", bhh)):
                if b.shape != (g * h,):
                    raise ModelFileError(f"rnn.{nm}_l{k}: shape {list(b.shape)} should be [{g * h}]")
            prev = h
        if self.head_weight.ndim != 2 or self.head_weight.shape[1] != prev:
            raise ModelFileError(f"head.weight: shape {list(self.head_weight.shape)} should have {prev} columns (the top layer's hidden size)")
        if self.head_bias.shape != (self.head_weight.shape[0],):
            raise ModelFileError(f"head.bias: shape {list(self.head_bias.shape)} should be [{self.head_weight.shape[0]}]")
        forecast = self.metadata.get("forecast", "level")
        if forecast not in ("level", "residual"):
            raise ModelFileError(f"metadata forecast is '{forecast}' (expected level or residual)")
        if self.residual and (self.embed is not None or self.head != "linear" or self.output_size != self.input_size):
            raise ModelFileError("a residual head needs feature input, a linear head and as many outputs as inputs")
        for name, t in self.tensors().items():
            if not np.all(np.isfinite(t)):
                i = int(np.flatnonzero(~np.isfinite(t.ravel()))[0])
                raise ModelFileError(f"{name}: non-finite value {t.ravel()[i]} at element {i}")

    # --- files
    def tensors(self) -> Dict[str, np.ndarray]:
        t = {}
        for k, (wih, whh, bih, bhh) in enumerate(self.layers):
            t[f"rnn.weight_ih_l{k}"], t[f"rnn.weight_hh_l{k}"] = wih, whh
            t[f"rnn.bias_ih_l{k}"], t[f"rnn.bias_hh_l{k}"] = bih, bhh
        t["head.weight"], t["head.bias"] = self.head_weight, self.head_bias
        if self.embed is not None:
            t["embed.weight"] = self.embed
        return t

    def file_metadata(self) -> Dict[str, str]:
        m = dict(self.metadata)
        m.update({"format": FORMAT, "cell": self.cell, "input": self.input, "head": self.head})
        return m

    def save(self, path: Optional[str]) -> bytes:
        """Writes the model file (DESIGN §2); returns its bytes."""
        self.validate()
        return write_safetensors(path, self.tensors(), self.file_metadata())

    @classmethod
    def load(cls, path_or_bytes, *, name: str = "", cast: bool = False) -> "Model":
        """Reads and checks a model file (daemon checkpoints' ``optim.``/``norm.`` tensors are ignored).
        Tensors must be F32, as the daemon requires; ``cast=True`` reads other float dtypes as
        float32 instead (to write such a file again in F32)."""
        dtypes: Dict[str, str] = {}
        tensors, meta = read_safetensors(path_or_bytes, name=name, dtypes=dtypes)
        fname = name or (str(path_or_bytes) if not isinstance(path_or_bytes, (bytes, bytearray, memoryview)) else "<bytes>")
        for n, d in dtypes.items():
            if d != "F32" and not n.startswith(_CHECKPOINT_EXTRAS):
                if not cast or d not in ("F64", "F16", "BF16"):
                    raise ModelFileError(f"{fname}: tensor '{n}': dtype is {d}; recurd reads F32"
                                         + (" (Model.load(path, cast=True).save(out) writes it in F32)" if d in ("F64", "F16", "BF16") else ""))
                tensors[n] = tensors[n].astype(np.float32)
        for key in ("format", "cell", "input", "head"):
            if key not in meta:
                raise ModelFileError(f"{fname}: metadata has no '{key}' (expected format, cell, input, head)")
        if meta["format"] != FORMAT:
            raise ModelFileError(f"{fname}: metadata format is '{meta['format']}', expected '{FORMAT}'")
        if meta["input"] not in INPUTS:
            raise ModelFileError(f"{fname}: unknown input '{meta['input']}' (expected features or tokens)")
        layers, k = [], 0
        while f"rnn.weight_ih_l{k}" in tensors or f"rnn.weight_hh_l{k}" in tensors:
            names = [f"rnn.weight_ih_l{k}", f"rnn.weight_hh_l{k}", f"rnn.bias_ih_l{k}", f"rnn.bias_hh_l{k}"]
            for n in names:
                if n not in tensors:
                    raise ModelFileError(f"{fname}: tensor '{n}': missing")
            layers.append([tensors.pop(n) for n in names])
            k += 1
        for n in ("head.weight", "head.bias") + (("embed.weight",) if meta["input"] == "tokens" else ()):
            if n not in tensors:
                raise ModelFileError(f"{fname}: tensor '{n}': missing")
        hw, hb = tensors.pop("head.weight"), tensors.pop("head.bias")
        embed = tensors.pop("embed.weight") if meta["input"] == "tokens" else None
        for n in tensors:
            if not n.startswith(_CHECKPOINT_EXTRAS):
                raise ModelFileError(f"{fname}: tensor '{n}': unexpected for a {k}-layer {meta['cell']} {meta['input']} model")
        try:
            return cls(meta["cell"], layers, hw, hb, head=meta["head"], embed=embed, metadata=meta)
        except ModelFileError as e:
            raise ModelFileError(f"{fname}: {e}") from None
