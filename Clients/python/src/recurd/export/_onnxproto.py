"""A minimal reader of ONNX files (protobuf wire format) with numpy alone: the graph's nodes,
attributes, inputs, outputs and initializers — what ``recurd-export --from onnx`` needs — without
the ``onnx`` package."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


class ONNXFileError(ValueError):
    pass


def _varint(b: bytes, p: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if p >= len(b):
            raise ONNXFileError("truncated varint")
        c = b[p]
        p += 1
        result |= (c & 0x7F) << shift
        if not c & 0x80:
            return result, p
        shift += 7
        if shift > 70:
            raise ONNXFileError("varint too long")


def _fields(b: bytes) -> List[Tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: ints for varint/fixed, bytes for length-delimited."""
    out, p = [], 0
    while p < len(b):
        key, p = _varint(b, p)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, p = _varint(b, p)
        elif wt == 1:
            v = b[p:p + 8]
            p += 8
        elif wt == 2:
            n, p = _varint(b, p)
            v = b[p:p + n]
            if len(v) != n:
                raise ONNXFileError("truncated field")
            p += n
        elif wt == 5:
            v = b[p:p + 4]
            p += 4
        else:
            raise ONNXFileError(f"unsupported wire type {wt}")
        out.append((num, wt, v))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(items: List[Tuple[int, Any]]) -> List[int]:
    """Repeated int64: packed (bytes) or not."""
    out = []
    for wt, v in items:
        if wt == 2:
            p = 0
            while p < len(v):
                x, p = _varint(v, p)
                out.append(_signed(x))
        else:
            out.append(_signed(v))
    return out


def _floats(items: List[Tuple[int, Any]]) -> List[float]:
    out = []
    for wt, v in items:
        if wt == 2:
            out.extend(np.frombuffer(v, "<f4").tolist())
        else:
            out.append(struct.unpack("<f", v)[0])
    return out


_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
                10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def parse_tensor(b: bytes, base_dir: str = "") -> Tuple[str, np.ndarray]:
    dims, dtype, name, raw = [], 1, "", None
    groups: Dict[int, List[Tuple[int, Any]]] = {}
    external: Dict[str, str] = {}
    location = 0
    for num, wt, v in _fields(b):
        if num == 1:
            dims.extend(_ints([(wt, v)]))
        elif num == 2:
            dtype = v
        elif num == 8:
            name = v.decode("utf-8")
        elif num == 9:
            raw = v
        elif num == 13:
            kv = {n: vv.decode("utf-8") for n, _, vv in _fields(v)}
            external[kv.get(1, "")] = kv.get(2, "")
        elif num == 14:
            location = v
        else:
            groups.setdefault(num, []).append((wt, v))
    if dtype == 16:  # bfloat16
        np_dtype = "bf16"
    elif dtype not in _ONNX_DTYPES:
        raise ONNXFileError(f"initializer '{name}': ONNX data type {dtype} is not supported")
    else:
        np_dtype = _ONNX_DTYPES[dtype]
    count = int(np.prod(dims)) if dims else 1
    if location == 1:
        path = os.path.join(base_dir, external.get("location", ""))
        offset, length = int(external.get("offset", 0) or 0), external.get("length")
        with open(path, "rb") as fh:
            fh.seek(offset)
            raw = fh.read(int(length) if length else -1)
    if raw is not None:
        if np_dtype == "bf16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)
    elif dtype == 1:
        a = np.array(_floats(groups.get(4, [])), np.float32)
    elif dtype == 11:
        a = np.array([struct.unpack("<d", v)[0] if wt == 1 else x for wt, v in groups.get(10, [])
                      for x in ([None] if wt == 1 else np.frombuffer(v, "<f8").tolist())], np.float64)
    elif dtype in (7,):
        a = np.array(_ints(groups.get(7, [])), np.int64)
    elif dtype in (2, 3, 4, 5, 6, 9, 10):
        a = np.array(_ints(groups.get(5, [])), np.int64).astype(np_dtype if dtype != 10 else np.uint16)
        if dtype == 10:
            a = a.view(np.float16)
    elif dtype in (12, 13):
        a = np.array([x & ((1 << 64) - 1) for x in _ints(groups.get(11, []))], np.uint64).astype(np_dtype)
    else:
        raise ONNXFileError(f"initializer '{name}': cannot read its data")
    if a.size != count:
        raise ONNXFileError(f"initializer '{name}': {a.size} values for shape {dims}")
    return name, a.reshape(dims)


@dataclass
class Node:
    op_type: str
    name: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def label(self) -> str:
        return f"{self.op_type} node '{self.name}'" if self.name else f"{self.op_type} node (output '{self.outputs[0] if self.outputs else '?'}')"


@dataclass
class ValueInfo:
    name: str
    elem_type: int = 0
    shape: Optional[List[Any]] = None  # ints, or str for symbolic dims, or None for unknown


@dataclass
class Graph:
    nodes: List[Node]
    initializers: Dict[str, np.ndarray]
    inputs: List[ValueInfo]
    outputs: List[ValueInfo]
    opset: int = 0


def _attribute(b: bytes, base_dir: str) -> Tuple[str, Any]:
    name, atype, vals = "", 0, {}
    for num, wt, v in _fields(b):
        if num == 1:
            name = v.decode("utf-8")
        elif num == 20:
            atype = v
        else:
            vals.setdefault(num, []).append((wt, v))
    # AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS
    if atype == 1 or (not atype and 2 in vals):
        return name, _floats(vals.get(2, [(5, b"\0\0\0\0")]))[0]
    if atype == 2 or (not atype and 3 in vals):
        return name, _ints(vals.get(3, [(0, 0)]))[0]
    if atype == 3 or (not atype and 4 in vals):
        return name, vals.get(4, [(2, b"")])[0][1].decode("utf-8", "replace")
    if atype == 4 or (not atype and 5 in vals):
        return name, parse_tensor(vals[5][0][1], base_dir)[1]
    if atype == 6:
        return name, _floats(vals.get(7, []))
    if atype == 7:
        return name, _ints(vals.get(8, []))
    if atype == 8:
        return name, [v.decode("utf-8", "replace") for _, v in vals.get(9, [])]
    return name, None  # graphs and others: not needed here


def _value_info(b: bytes) -> ValueInfo:
    vi = ValueInfo("")
    for num, _, v in _fields(b):
        if num == 1:
            vi.name = v.decode("utf-8")
        elif num == 2:
            for tn, _, tv in _fields(v):
                if tn == 1:  # tensor_type
                    for fn, _, fv in _fields(tv):
                        if fn == 1:
                            vi.elem_type = fv
                        elif fn == 2:
                            dims = []
                            for dn, _, dv in _fields(fv):
                                if dn == 1:
                                    d: Any = None
                                    for xn, _, xv in _fields(dv):
                                        d = xv if xn == 1 else xv.decode("utf-8") if xn == 2 else d
                                    dims.append(d)
                            vi.shape = dims
    return vi


def load_onnx(path: str) -> Graph:
    with open(path, "rb") as fh:
        data = fh.read()
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        top = _fields(data)
    except ONNXFileError as e:
        raise ONNXFileError(f"not an ONNX model ({e})") from None
    graph_bytes, opset = None, 0
    for num, wt, v in top:
        if num == 7 and wt == 2:
            graph_bytes = v
        elif num == 8 and wt == 2:
            dom, ver = "", 0
            for n2, _, v2 in _fields(v):
                if n2 == 1:
                    dom = v2.decode("utf-8")
                elif n2 == 2:
                    ver = v2
            if dom in ("", "ai.onnx"):
                opset = ver
    if graph_bytes is None:
        raise ONNXFileError("no graph in this file (not an ONNX model?)")
    nodes, inits, inputs, outputs = [], {}, [], []
    for num, wt, v in _fields(graph_bytes):
        if num == 1:
            n = Node("", "", [], [])
            for fn, _, fv in _fields(v):
                if fn == 1:
                    n.inputs.append(fv.decode("utf-8"))
                elif fn == 2:
                    n.outputs.append(fv.decode("utf-8"))
                elif fn == 3:
                    n.name = fv.decode("utf-8")
                elif fn == 4:
                    n.op_type = fv.decode("utf-8")
                elif fn == 5:
                    k, val = _attribute(fv, base_dir)
                    n.attrs[k] = val
                elif fn == 7:
                    n.domain = fv.decode("utf-8")
            nodes.append(n)
        elif num == 5:
            name, arr = parse_tensor(v, base_dir)
            inits[name] = arr
        elif num == 11:
            inputs.append(_value_info(v))
        elif num == 12:
            outputs.append(_value_info(v))
    init_names = set(inits)
    return Graph(nodes, inits, [i for i in inputs if i.name not in init_names], outputs, opset)
