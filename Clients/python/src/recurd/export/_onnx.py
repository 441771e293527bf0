"""ONNX models → recurd models.

Maps a graph ``input → [Gather on an embedding] → LSTM|GRU node per layer → Gemm | MatMul[+Add]
→ [Softmax | Sigmoid] → output``, with only data-movement nodes (Transpose, Reshape, Squeeze,
Unsqueeze, Identity, Dropout, Cast) on the way, and a Gather/Slice of the last time step before
the head (many-to-one models). The head may also read the last layer's final state: its Y_h, or,
for a multi-layer PyTorch LSTM/GRU, ``h_n[-1]`` — ``torch.onnx.export`` stacks every layer's Y_h
into h_n with a Concat and selects the last one with a Gather (index -1 or num_layers-1) or a
Slice; a head on another layer's state (``h_n[0]``), on all of h_n, or on the cell states c_n is
refused. A head on the final state makes a many-to-one model: recurd predicts at every step, the
prediction at step t being the model's output for the prefix up to t.
ONNX LSTM gates i, o, f, c become i, f, g, o; GRU z, r, h become
r, z, n and must have ``linear_before_reset=1`` (PyTorch's GRU; what ``torch.onnx.export`` writes).
Initial states must be zero (absent, zero constants, ``ConstantOfShape(0)``, or graph inputs).
``sequence_lens`` is ignored with a note when it is a graph input (recurd streams one sequence and
steps every input; the check feeds the sequence's length) or a constant equal to the graph's fixed
sequence length; a constant that cuts sequences short, or any constant when the sequence length is
free, is refused.
Refused, naming the node: bidirectional or reverse layers, peepholes, clip, input_forget,
non-default activations, recurrent layers exported as loops, any other computation on the path.
"""
from __future__ import annotations

import collections
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..modelfile import Model
from ._common import ONNX_GRU, ONNX_LSTM, CheckResult, Conversion, ExportError, build_model, permute_gates, random_inputs, resolve_head
from ._onnxproto import Graph, Node, ONNXFileError, load_onnx

PASS = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast"}
SHAPE_ONLY = {"Shape", "Size"}
ZERO_STATE_OPS = {"Expand", "Slice", "Gather", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Tile", "Identity", "Cast", "Concat"}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
INT_MAX = 2 ** 62


class _Graph:
    def __init__(self, g: Graph):
        self.g = g
        self.consts: Dict[str, np.ndarray] = dict(g.initializers)
        for n in g.nodes:
            if n.op_type == "Constant" and n.outputs:
                for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                    if key in n.attrs:
                        self.consts[n.outputs[0]] = np.asarray(n.attrs[key])
        self.producer = {o: n for n in g.nodes for o in n.outputs if o}
        self.consumers: Dict[str, List[Node]] = collections.defaultdict(list)
        for n in g.nodes:
            for i in n.inputs:
                if i:
                    self.consumers[i].append(n)
        self.input_names = {i.name for i in g.inputs}
        self.output_names = {o.name for o in g.outputs}

    def shape_only(self, n: Node, depth: int = 0) -> bool:
        """Whether only the shape of ``n``'s input matters: a Shape/Size node, or data movement whose
        results only such nodes read (e.g. a Transpose read by the Shape that sizes a zero state)."""
        if n.op_type in SHAPE_ONLY:
            return True
        if n.op_type not in PASS or depth > 8 or any(o in self.output_names for o in n.outputs):
            return False
        cs = [c for o in n.outputs if o for c in self.consumers.get(o, [])]
        return bool(cs) and all(self.shape_only(c, depth + 1) for c in cs)

    def data_consumers(self, name: str) -> List[Node]:
        """The nodes that read the values of ``name``, not only its shape."""
        return [n for n in self.consumers.get(name, []) if not self.shape_only(n)]

    def const(self, name: str, depth: int = 0) -> Optional[np.ndarray]:
        """The value of ``name`` if it is a constant, folding simple ops over constants."""
        if name in self.consts:
            return self.consts[name]
        n = self.producer.get(name)
        if n is None or depth > 16:
            return None
        ins = [self.const(i, depth + 1) if i else None for i in n.inputs]
        op = n.op_type
        try:
            if op in ("Identity", "Cast") and ins[0] is not None:
                v = ins[0]
            elif op == "Unsqueeze" and ins[0] is not None:
                axes = n.attrs.get("axes") if "axes" in n.attrs else (list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
                if axes is None:
                    return None
                v = ins[0]
                for a in sorted(int(x) % (v.ndim + len(axes)) for x in axes):
                    v = np.expand_dims(v, a)
            elif op == "Squeeze" and ins[0] is not None:
                axes = n.attrs.get("axes") if "axes" in n.attrs else (list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
                v = np.squeeze(ins[0]) if axes is None else np.squeeze(ins[0], axis=tuple(int(a) for a in axes))
            elif op == "Reshape" and ins[0] is not None and len(ins) > 1 and ins[1] is not None:
                shape = [int(s) for s in ins[1]]
                shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
                v = ins[0].reshape(shape)
            elif op == "Transpose" and ins[0] is not None:
                v = np.transpose(ins[0], n.attrs.get("perm"))
            elif op == "Concat" and all(x is not None for x in ins):
                v = np.concatenate(ins, axis=int(n.attrs.get("axis", 0)))
            else:
                return None
        except (ValueError, IndexError, TypeError):
            return None
        self.consts[name] = v
        return v

    def sources(self, name: str, depth: int = 0) -> set:
        """Graph inputs that reach ``name`` through state-shaping nodes (initial states)."""
        if not name or depth > 32:
            return set()
        if name in self.input_names:
            return {name}
        n = self.producer.get(name)
        if n is None or n.op_type not in ZERO_STATE_OPS:
            return set()
        out = set()
        for i in (n.inputs if n.op_type == "Concat" else n.inputs[:1]):
            out |= self.sources(i, depth + 1)
        return out

    def is_zero_state(self, name: str, depth: int = 0) -> Tuple[bool, str]:
        """Whether an initial-state input is zero at the start of every sequence."""
        if not name:
            return True, ""
        if name in self.input_names:
            return True, f"graph input '{name}' (streams start from zero)"
        v = self.const(name)
        if v is not None:
            return (not np.any(v)), ("" if not np.any(v) else f"the constant '{name}' is not zero")
        n = self.producer.get(name)
        if n is None or depth > 32:
            return False, f"'{name}' has no producer"
        if n.op_type == "ConstantOfShape":
            value = n.attrs.get("value")
            ok = value is None or not np.any(value)
            return ok, "" if ok else f"{n.label()} fills with {value}"
        if n.op_type in ZERO_STATE_OPS:
            data = n.inputs if n.op_type == "Concat" else n.inputs[:1]
            for i in data:
                ok, why = self.is_zero_state(i, depth + 1)
                if not ok:
                    return ok, why
            return True, ""
        return False, f"it is computed by {n.label()}"


def _attr_axes(gr: _Graph, n: Node) -> Optional[List[int]]:
    if "axes" in n.attrs:
        return [int(a) for a in n.attrs["axes"]]
    if len(n.inputs) > 1 and n.inputs[1]:
        v = gr.const(n.inputs[1])
        return None if v is None else [int(a) for a in np.ravel(v)]
    return None


def _move(gr: _Graph, n: Node, labels: List[str], where: str, allow_time_select: bool) -> List[str]:
    """Labels (T time, B batch, D directions, H features, 1 unit) after a data-movement node."""
    op, rank = n.op_type, len(labels)
    if op in ("Identity", "Dropout", "Cast"):
        return labels
    if op == "Transpose":
        perm = n.attrs.get("perm", list(range(rank))[::-1])
        return [labels[p] for p in perm]
    if op == "Squeeze":
        axes = _attr_axes(gr, n)
        if axes is None:
            return [l for l in labels if l in ("T", "H")] if "B" not in labels else [l for l in labels if l not in ("D", "1")]
        axes = [a % rank for a in axes]
        for a in axes:
            if labels[a] in ("T", "H"):
                raise ExportError(f"{n.label()} squeezes the {'time' if labels[a] == 'T' else 'feature'} axis {where}")
        return [l for i, l in enumerate(labels) if i not in axes]
    if op == "Unsqueeze":
        axes = _attr_axes(gr, n)
        if axes is None:
            raise ExportError(f"{n.label()}: cannot tell which axes it adds {where}")
        out = list(labels)
        for a in sorted(a % (rank + len(axes)) for a in axes):
            out.insert(a, "1")
        return out
    if op == "Reshape":
        core = [l for l in labels if l in ("T", "B", "H")]
        shape = gr.const(n.inputs[1]) if len(n.inputs) > 1 else None
        if shape is None:
            return core  # computed shape: assumed to keep the axes' order (checked numerically when onnxruntime is there)
        shape = [int(s) for s in np.ravel(shape)]
        slots = [i for i, s in enumerate(shape) if s != 1]
        if len(slots) < len(core) and "B" in core:
            core = [l for l in core if l != "B"]  # a batch of 1 folded away
        if len(slots) != len(core) or (core and core[-1] == "H" and slots[-1] != len(shape) - 1):
            raise ExportError(f"{n.label()} reshapes {labels} into {shape} {where}; only adding or removing unit axes maps to recurd")
        out = ["1"] * len(shape)
        for i, l in zip(slots, core):
            out[i] = l
        return out
    if op in ("Gather", "Slice"):
        if op == "Gather":
            axis = int(n.attrs.get("axis", 0)) % rank
            idx = gr.const(n.inputs[1])
            if idx is None:
                raise ExportError(f"{n.label()} selects with computed indices {where}")
            lab = labels[axis]
            if lab == "T":
                if not allow_time_select:
                    raise ExportError(f"{n.label()} selects time steps between recurrent layers")
                if np.ndim(idx) != 0 or int(idx) != -1:
                    raise ExportError(f"{n.label()} selects time step {idx.tolist()}; only the last step (-1) keeps the "
                                      "model step-wise (prediction at t from the prefix up to t)")
                return [l for i, l in enumerate(labels) if i != axis]
            if lab in ("D", "B", "1") and np.ndim(idx) == 0 and int(idx) in (0, -1):
                return [l for i, l in enumerate(labels) if i != axis]
            raise ExportError(f"{n.label()} selects along the {'feature' if lab == 'H' else lab} axis {where}")
        ins = [gr.const(i) if i else None for i in n.inputs[1:]]
        starts, ends = ins[0], ins[1]
        axes = ins[2] if len(ins) > 2 and ins[2] is not None else np.arange(len(np.ravel(starts)))
        steps = ins[3] if len(ins) > 3 and ins[3] is not None else np.ones(len(np.ravel(starts)), np.int64)
        if starts is None or ends is None:
            raise ExportError(f"{n.label()} slices with computed bounds {where}")
        out = list(labels)
        for s, e, a, st in zip(np.ravel(starts), np.ravel(ends), np.ravel(axes), np.ravel(steps)):
            lab = labels[int(a) % rank]
            whole = int(s) == 0 and int(e) >= INT_MAX // 2 and int(st) == 1
            if whole:
                continue
            if lab == "T" and allow_time_select and int(s) == -1 and int(st) == 1 and int(e) >= INT_MAX // 2:
                out[int(a) % rank] = "1"
                continue
            if lab in ("D", "1", "B") and int(st) == 1 and int(s) in (0, -1):
                continue
            raise ExportError(f"{n.label()} slices [{s}:{e}:{st}] along the {'feature' if lab == 'H' else lab} axis {where}")
        return out
    raise ExportError(f"{n.label()} {where}: not a data-movement node")


def _follow(gr: _Graph, tensor: str, labels: List[str], stops: Dict[str, Node], where: str, allow_time_select: bool):
    """Follows the single chain of consumers of ``tensor`` through data-movement nodes. Returns
    (node it stops at or None if the chain ends, the tensor feeding it, labels there)."""
    t, seen = tensor, 0
    while True:
        cs = gr.data_consumers(t)
        if not cs:
            return None, t, labels
        if len(cs) > 1:
            raise ExportError(f"'{t}' feeds several nodes ({', '.join(n.label() for n in cs)}) {where}; "
                              "recurd maps one straight chain")
        n = cs[0]
        if id(n) in {id(s) for s in stops.values()} or n.op_type in stops:
            return n, t, labels
        if n.inputs[0] != t:
            raise ExportError(f"{n.label()} takes '{t}' as a parameter {where}")
        if n.op_type not in PASS and n.op_type not in ("Gather", "Slice"):
            raise ExportError(f"{n.label()} lies {where}; recurd has nothing there (only reshaping, and selecting the last step "
                              "before the head)")
        labels = _move(gr, n, labels, where, allow_time_select)
        t = n.outputs[0]
        seen += 1
        if seen > 1000:
            raise ExportError("graph too long")


def _selected_layers(gr: _Graph, n: Node, axis: int, count: int) -> Optional[Tuple[List[int], bool, str]]:
    """What a Gather/Slice node ``n`` takes along ``axis`` of a rank-3 tensor with ``count`` entries
    there: (indices, whether the axis stays, how it reads as an index), or None when it does not
    touch that axis. Raises when the selection is computed."""
    if n.op_type == "Gather":
        if int(n.attrs.get("axis", 0)) % 3 != axis:
            return None
        idx = gr.const(n.inputs[1]) if len(n.inputs) > 1 else None
        if idx is None:
            raise ExportError(f"{n.label()} selects layers' final states with computed indices")
        flat = [int(i) for i in np.ravel(idx)]
        if any(not -count <= i < count for i in flat):
            raise ExportError(f"{n.label()} selects index {idx.tolist()} of {count} layers' final states")
        text = str(flat[0]) if np.ndim(idx) == 0 else str(flat)
        return [i % count for i in flat], np.ndim(idx) != 0, text
    ins = [gr.const(i) if i else None for i in n.inputs[1:]]
    starts, ends = (ins[0], ins[1]) if len(ins) > 1 else (None, None)
    if starts is None or ends is None:
        raise ExportError(f"{n.label()} slices layers' final states with computed bounds")
    axes = ins[2] if len(ins) > 2 and ins[2] is not None else np.arange(len(np.ravel(starts)))
    steps = ins[3] if len(ins) > 3 and ins[3] is not None else np.ones(len(np.ravel(starts)), np.int64)
    found = None
    for s_, e_, a_, st in zip(np.ravel(starts), np.ravel(ends), np.ravel(axes), np.ravel(steps)):
        if int(a_) % 3 == axis:
            found = list(range(count))[slice(int(s_), int(e_), int(st))]
            text = (("" if int(s_) == 0 else str(int(s_))) + ":" + ("" if int(e_) >= INT_MAX // 2 else str(int(e_)))
                    + ("" if int(st) == 1 else f":{int(st)}"))
        elif not (int(s_) == 0 and int(e_) >= INT_MAX // 2 and int(st) == 1):
            raise ExportError(f"{n.label()} slices [{s_}:{e_}:{st}] along axis {a_} of the layers' final states (h_n)")
    return None if found is None else (found, True, text)


def _stacked_states(gr: _Graph, rnns: List[Node], notes: List[str]) -> None:
    """PyTorch's h_n / c_n of a multi-layer LSTM/GRU: ``torch.onnx.export`` concatenates the layers'
    Y_h (Y_c) along the directions axis. A head reading the last layer's entry (``h_n[-1]``: a
    Gather with index -1 or num_layers-1, or a Slice) reads that layer's Y_h: the graph is
    rewired so (Concat → selection) becomes a selection of the last layer's Y_h. Any other use
    of the stacked states is refused, saying what it reads."""
    where = {}
    for k, r in enumerate(rnns):
        for j in (1, 2):
            if j < len(r.outputs) and r.outputs[j]:
                where[r.outputs[j]] = (k, j)
    def detach(cat: Node) -> None:
        """The Concat no longer reads the layers' states: they feed the selection (or nothing)."""
        for i in cat.inputs:
            gr.consumers[i] = [x for x in gr.consumers.get(i, []) if id(x) != id(cat)]

    concats = []
    for t in where:
        for c in gr.consumers.get(t, []):
            if c.op_type == "Concat" and all(id(c) != id(x) for x in concats):
                concats.append(c)
    for cat in concats:
        parts = []
        for i in cat.inputs:
            if i not in where:
                k, j = next(where[x] for x in cat.inputs if x in where)
                raise ExportError(f"{cat.label()} joins the final state {'Y_h' if j == 1 else 'Y_c'} of {rnns[k].label()} with "
                                  f"'{i}', which is no recurrent layer's final state; recurd's head reads the last layer's state "
                                  "alone")
            parts.append(where[i])
        kinds = {j for _, j in parts}
        if len(kinds) > 1:
            raise ExportError(f"{cat.label()} joins hidden (Y_h) and cell (Y_c) final states; recurd's head reads the last layer's h")
        j = kinds.pop()
        name = "h_n" if j == 1 else "c_n"
        layout = {int(rnns[k].attrs.get("layout", 0)) for k, _ in parts}
        axis = int(cat.attrs.get("axis", 0)) % 3
        if len(layout) > 1 or axis != (0 if 0 in layout else 1):
            raise ExportError(f"{cat.label()} joins the final states of {', '.join(rnns[k].label() for k, _ in parts)} along axis "
                              f"{cat.attrs.get('axis', 0)}, not the layers' axis; recurd's head reads the last layer's state alone")
        layer_names = ", ".join(rnns[k].label() for k, _ in parts)
        stacked = (f"{name} (the final {'hidden' if j == 1 else 'cell'} states of {len(parts)} layers: {layer_names}, "
                   f"stacked by {cat.label()})")
        # Follow the stacked states through nodes that change nothing to where a layer is selected.
        t, sel = cat.outputs[0], None
        while True:
            cs = gr.data_consumers(t)
            if not cs:
                break  # an extra graph output, or unused: not recurd's business
            if len(cs) > 1:
                raise ExportError(f"{stacked} feeds several nodes ({', '.join(c.label() for c in cs)}); recurd's head reads the "
                                  "last layer's final state once")
            c = cs[0]
            if j == 2:
                raise ExportError(f"{c.label()} reads {stacked}; recurd's head reads the last layer's hidden state "
                                  "(h_n[-1], or the output sequence)")
            if c.inputs[0] == t and c.op_type in ("Identity", "Dropout", "Cast"):
                t = c.outputs[0]
                continue
            got = _selected_layers(gr, c, axis, len(parts)) if c.inputs[0] == t and c.op_type in ("Gather", "Slice") else None
            if got is None:
                what = "the head " if c.op_type in ("Gemm", "MatMul") else ""
                raise ExportError(f"{what}{c.label()} reads all of {stacked}, not one layer's; recurd's head reads the last layer's "
                                  f"final state ({name}[-1])")
            sel = (c, got)
            break
        if sel is None:
            detach(cat)
            continue
        c, (idx, keeps, text) = sel
        if len(idx) != 1:
            raise ExportError(f"{c.label()} takes {name}[{text}] — the final states of layers {idx} of {stacked} — not one layer's; "
                              f"recurd's head reads the last layer's final state ({name}[-1])")
        k, _ = parts[idx[0]]
        if k != len(rnns) - 1:
            raise ExportError(f"{c.label()} takes {name}[{text}]: the final state of {rnns[k].label()} (layer {k} of layers "
                              f"0–{len(rnns) - 1}) from {stacked}; recurd's head reads the last layer's final state "
                              f"({name}[-1], the Y_h of {rnns[-1].label()}), not a lower layer's")
        # Rewire: the selection now reads the last layer's Y_h (shape [1, B, H]) directly.
        last_h, base = cat.inputs[idx[0]], f"{c.outputs[0]}::recurd"
        if keeps:
            gr.consts.update({f"{base}_start": np.array([0], np.int64), f"{base}_end": np.array([1], np.int64),
                              f"{base}_axis": np.array([axis], np.int64)})
            node = Node("Slice", c.name, [last_h, f"{base}_start", f"{base}_end", f"{base}_axis"], list(c.outputs[:1]))
        else:
            gr.consts[f"{base}_index"] = np.array(0, np.int64)
            node = Node("Gather", c.name, [last_h, f"{base}_index"], list(c.outputs[:1]), {"axis": axis})
        detach(cat)
        gr.consumers[last_h].append(node)
        gr.producer[c.outputs[0]] = node
        notes.append(f"{c.label()} takes {name}[{text}] from {cat.label()}: the last layer's final state (the Y_h of "
                     f"{rnns[-1].label()}) — a many-to-one head: recurd predicts at every step, the prediction at step t "
                     "being the model's output for the prefix up to t")


def convert_onnx(path: str, head: Optional[str] = None, **_: Any) -> Conversion:
    where = os.path.basename(path)
    try:
        g = load_onnx(path)
    except (ONNXFileError, OSError) as e:
        raise ExportError(f"{where}: {e}") from None
    gr = _Graph(g)
    notes: List[str] = []
    for n in g.nodes:
        if n.domain not in ("", "ai.onnx"):
            raise ExportError(f"{n.label()} is a custom operator (domain '{n.domain}')")
        if n.op_type == "RNN":
            raise ExportError(f"{n.label()}: a plain RNN cell has no place in recurd (LSTM or GRU)")
        if n.op_type in ("Loop", "Scan", "If"):
            raise ExportError(f"{n.label()}: a recurrent layer exported as a {n.op_type}; export with the LSTM/GRU operator "
                              "(torch.onnx.export of nn.LSTM/nn.GRU does)")
    rnns = [n for n in g.nodes if n.op_type in ("LSTM", "GRU")]
    if not rnns:
        raise ExportError(f"{where}: no LSTM or GRU node")
    op = rnns[0].op_type
    for n in rnns:
        if n.op_type != op:
            raise ExportError(f"{n.label()} after {op} nodes; recurd stacks one cell kind")
    G, order = (4, ONNX_LSTM) if op == "LSTM" else (3, ONNX_GRU)

    layers = []
    seq_inputs: set = set()
    seq_consts: List[Tuple[Node, str, np.ndarray]] = []
    for k, n in enumerate(rnns):
        a = n.attrs
        if a.get("direction", "forward") != "forward":
            raise ExportError(f"{n.label()}: direction={a['direction']}; only forward layers stream")
        acts = a.get("activations")
        if acts is not None and [s.lower() for s in acts] != [s.lower() for s in DEFAULT_ACTIVATIONS[op]]:
            raise ExportError(f"{n.label()}: activations {acts}; recurd's {op} uses {DEFAULT_ACTIVATIONS[op]}")
        if a.get("clip") is not None:
            raise ExportError(f"{n.label()}: clip={a['clip']} clips the gates' pre-activations; recurd does not")
        if int(a.get("input_forget", 0)):
            raise ExportError(f"{n.label()}: input_forget=1 couples the input and forget gates; recurd's LSTM does not")
        if op == "GRU" and int(a.get("linear_before_reset", 0)) != 1:
            raise ExportError(f"{n.label()}: linear_before_reset=0 applies the reset gate before the recurrent product; "
                              "recurd's GRU is PyTorch's (linear_before_reset=1) and cannot represent it exactly")
        ins = list(n.inputs) + [""] * (8 - len(n.inputs))
        W, R = gr.const(ins[1]), gr.const(ins[2])
        if W is None or R is None:
            raise ExportError(f"{n.label()}: its weights W/R are not constants")
        B = gr.const(ins[3]) if ins[3] else np.zeros((1, 2 * W.shape[1]), np.float32)
        if B is None:
            raise ExportError(f"{n.label()}: its bias B is not a constant")
        if W.ndim != 3 or W.shape[0] != 1:
            raise ExportError(f"{n.label()}: W has shape {W.shape}; expected [1, {G}·H, input]")
        H = int(a.get("hidden_size", R.shape[-1]))
        if W.shape[1] != G * H or R.shape != (1, G * H, H) or B.shape != (1, 2 * G * H):
            raise ExportError(f"{n.label()}: W {W.shape}, R {R.shape}, B {B.shape} do not fit hidden_size {H}")
        if op == "LSTM" and ins[7]:
            P = gr.const(ins[7])
            if P is None or np.any(P):
                raise ExportError(f"{n.label()}: peephole weights P; recurd's LSTM has no peepholes")
        if ins[4]:
            srcs = gr.sources(ins[4])
            if srcs:
                seq_inputs |= srcs
                notes.append(f"{n.label()}: sequence_lens is graph input {', '.join(repr(x) for x in sorted(srcs))}; ignored — recurd "
                             "streams one sequence and steps every input (the check feeds the sequence's length)")
            elif gr.const(ins[4]) is not None:
                seq_consts.append((n, ins[4], gr.const(ins[4])))
            else:
                notes.append(f"{n.label()}: sequence_lens is ignored (recurd steps every input)")
        for idx, what in ((5, "initial_h"), (6, "initial_c")):
            if idx < 7 or op == "LSTM":
                ok, why = gr.is_zero_state(ins[idx])
                if not ok:
                    raise ExportError(f"{n.label()}: {what} is not zero ({why}); recurd starts every stream from a zero state")
                if why:
                    notes.append(f"{n.label()}: {what} is {why}")
        layers.append((permute_gates(W[0], order, G), permute_gates(R[0], order, G),
                       permute_gates(B[0, :G * H], order, G), permute_gates(B[0, G * H:], order, G)))

    _stacked_states(gr, rnns, notes)

    # Input side: graph input → [Gather on an embedding] → data movement → layer 0's X.
    layout0 = int(rnns[0].attrs.get("layout", 0))
    labels = ["T", "B", "H"] if layout0 == 0 else ["B", "T", "H"]
    t, embed, input_labels = rnns[0].inputs[0], None, None
    while t not in gr.input_names:
        n = gr.producer.get(t)
        if n is None:
            raise ExportError(f"the input of {rnns[0].label()} ('{t}') is neither a graph input nor computed from one")
        if n.op_type == "Gather" and gr.const(n.inputs[0]) is not None and gr.const(n.inputs[0]).ndim == 2 and int(n.attrs.get("axis", 0)) == 0:
            if embed is not None:
                raise ExportError(f"{n.label()}: a second embedding lookup")
            embed = gr.const(n.inputs[0]).astype(np.float32)
            labels = labels[:-1] if labels is not None and labels[-1] == "H" else None
            t = n.inputs[1]
            continue
        if n.op_type not in PASS:
            raise ExportError(f"{n.label()} lies between the graph input and {rnns[0].label()}; recurd has nothing there")
        if n.op_type == "Transpose" and labels is not None:
            perm = n.attrs.get("perm", list(range(len(labels)))[::-1])
            inv = [0] * len(perm)
            for i, p in enumerate(perm):
                inv[p] = i
            labels = [labels[inv[j]] for j in range(len(perm))]
        elif n.op_type not in ("Identity", "Dropout", "Cast"):
            labels = None  # reshaped: layout unknown
        t = n.inputs[0]
    data_input = t
    input_labels = labels
    state_sources = set()
    for r in rnns:
        for i in r.inputs[5:7]:
            state_sources |= gr.sources(i)
    for vi in g.inputs:
        if vi.name != data_input and vi.name not in state_sources and vi.name not in seq_inputs:
            raise ExportError(f"graph input '{vi.name}' is neither the sequence, nor an initial state, nor sequence_lens")
        if vi.name != data_input and any(c.op_type in ("LSTM", "GRU") and vi.name == c.inputs[0] for c in gr.consumers.get(vi.name, [])):
            raise ExportError(f"graph input '{vi.name}' feeds a recurrent layer's input")

    fixed_t = _fixed_steps(g, data_input, input_labels, embed is not None)
    for n, name, v in seq_consts:
        vals = [int(x) for x in np.ravel(v)]
        if fixed_t is None:
            raise ExportError(f"{n.label()}: sequence_lens is the constant '{name}' = {vals}: the graph stops every sequence after "
                              f"{min(vals) if vals else 0} steps (onnxruntime refuses shorter ones), while the sequence length is "
                              "free and recurd steps every input of a stream; export without sequence_lens")
        if any(x < fixed_t for x in vals) or not vals:
            raise ExportError(f"{n.label()}: sequence_lens is the constant '{name}' = {vals}, shorter than the graph's fixed "
                              f"sequence length {fixed_t}: the graph ignores the steps after it, recurd steps every input")
        notes.append(f"{n.label()}: sequence_lens is the constant '{name}' = {vals}, the graph's fixed sequence length; ignored")

    # Between layers: Y of layer k-1 → data movement → X of layer k.
    for k in range(1, len(rnns)):
        prev, n = rnns[k - 1], rnns[k]
        lay = int(prev.attrs.get("layout", 0))
        ylab = ["T", "D", "B", "H"] if lay == 0 else ["B", "T", "D", "H"]
        for j, out in enumerate(prev.outputs):
            if not out:
                continue
            stop, fed, lab = _follow(gr, out, ylab if j == 0 else (["D", "B", "H"] if lay == 0 else ["B", "D", "H"]),
                                     {"next": n}, f"between {prev.label()} and {n.label()}", False)
            if stop is None:
                if j > 0 and (out in gr.output_names or not gr.consumers.get(out)):
                    continue
                if j == 0:
                    raise ExportError(f"{prev.label()}'s output Y does not reach {n.label()}")
                continue
            if j != 0:
                raise ExportError(f"{n.label()} is fed by {prev.label()}'s last state only (Y_h/Y_c), not its sequence Y")
            if fed != n.inputs[0]:
                raise ExportError(f"{prev.label()} feeds {n.label()} through another input than X")
            want = ["T", "B", "H"] if int(n.attrs.get("layout", 0)) == 0 else ["B", "T", "H"]
            got = [l for l in lab if l != "1" and l != "D"]
            if got != want and got != [l for l in want if l != "B"]:
                raise ExportError(f"{n.label()} receives axes {lab}, expected {want}")

    # Head: last layer's Y or Y_h → [time selection] → Gemm | MatMul [+ Add] → [Softmax|Sigmoid] → output.
    last = rnns[-1]
    lay = int(last.attrs.get("layout", 0))
    head_node = fed = hlab = None
    for j, out in enumerate(last.outputs):
        if not out:
            continue
        ylab = (["T", "D", "B", "H"] if lay == 0 else ["B", "T", "D", "H"]) if j == 0 else (["D", "B", "H"] if lay == 0 else ["B", "D", "H"])
        if j == 2:
            if gr.consumers.get(out):
                raise ExportError(f"{last.label()}'s cell state Y_c feeds other nodes; recurd's head reads h")
            continue
        stop, f, lab = _follow(gr, out, ylab, {"Gemm": None, "MatMul": None}, f"between {last.label()} and the head", True)
        if stop is not None:
            if head_node is not None:
                raise ExportError(f"both Y and Y_h of {last.label()} feed a head ({head_node.label()}, {stop.label()})")
            head_node, fed, hlab = stop, f, lab
    if head_node is None:
        raise ExportError(f"{where}: no Gemm or MatMul head after {last.label()}")
    if hlab[-1] != "H":
        raise ExportError(f"{head_node.label()} multiplies along axis {hlab[-1]}, not the hidden features")
    H_last = layers[-1][1].shape[1]
    if head_node.op_type == "Gemm":
        a = head_node.attrs
        if head_node.inputs[0] != fed or int(a.get("transA", 0)):
            raise ExportError(f"{head_node.label()}: the hidden state must be input A, not transposed")
        Bw = gr.const(head_node.inputs[1])
        if Bw is None:
            raise ExportError(f"{head_node.label()}: its weight is not a constant")
        Wh = Bw if int(a.get("transB", 0)) else Bw.T
        Wh = Wh * float(a.get("alpha", 1.0))
        C = gr.const(head_node.inputs[2]) if len(head_node.inputs) > 2 and head_node.inputs[2] else np.zeros(Wh.shape[0], np.float32)
        if C is None:
            raise ExportError(f"{head_node.label()}: its bias is not a constant")
        if C.size not in (1, Wh.shape[0]):
            raise ExportError(f"{head_node.label()}: bias of shape {C.shape} for {Wh.shape[0]} outputs")
        bh = np.broadcast_to(np.ravel(C), (Wh.shape[0],)) * float(a.get("beta", 1.0))
        out_t = head_node.outputs[0]
    else:
        if head_node.inputs[0] != fed:
            raise ExportError(f"{head_node.label()}: the hidden state must be its first input")
        Bw = gr.const(head_node.inputs[1])
        if Bw is None or Bw.ndim != 2:
            raise ExportError(f"{head_node.label()}: its weight is not a constant matrix")
        Wh = Bw.T
        out_t = head_node.outputs[0]
        cs = gr.data_consumers(out_t)
        bh = np.zeros(Wh.shape[0], np.float32)
        if len(cs) == 1 and cs[0].op_type == "Add":
            add = cs[0]
            other = [i for i in add.inputs if i != out_t]
            C = gr.const(other[0]) if len(other) == 1 else None
            if C is None or C.size not in (1, Wh.shape[0]) or (C.ndim and C.shape[-1] not in (1, Wh.shape[0])):
                raise ExportError(f"{add.label()}: after the head's MatMul it must add a constant bias of {Wh.shape[0]} values")
            bh = np.broadcast_to(np.ravel(C), (Wh.shape[0],)).copy()
            out_t = add.outputs[0]
        else:
            notes.append(f"{head_node.label()}: no bias added after it — zero head bias")
    if Wh.shape[1] != H_last:
        raise ExportError(f"{head_node.label()}: weight {Wh.shape} does not take the top layer's {H_last} features")
    olab = hlab[:-1] + ["O"]
    source_head = "linear"
    stop, t, lab = _follow(gr, out_t, olab, {"Softmax": None, "Sigmoid": None, "LogSoftmax": None, "Relu": None, "Tanh": None},
                           "after the head", False)
    if stop is not None:
        if stop.op_type not in ("Softmax", "Sigmoid"):
            raise ExportError(f"{stop.label()} after the head: recurd heads are linear, softmax or sigmoid")
        if stop.op_type == "Softmax":
            rank = len(lab)
            default = -1 if g.opset >= 13 or g.opset == 0 else 1
            axis = int(stop.attrs.get("axis", default)) % rank
            if axis != rank - 1 or lab[axis] != "O":
                raise ExportError(f"{stop.label()}: softmax over axis {stop.attrs.get('axis', default)} of a rank-{rank} tensor "
                                  f"(opset {g.opset}) is not over the outputs alone")
        source_head = stop.op_type.lower()
        stop2, t, lab = _follow(gr, stop.outputs[0], lab, {}, f"after {stop.label()}", False)
    if t not in gr.output_names:
        raise ExportError(f"the head's result '{t}' is not a graph output")
    out_head = resolve_head(source_head, head, f"{head_node.label()}", notes)
    model = build_model(where, op.lower(), layers, Wh.astype(np.float32), bh.astype(np.float32), head=out_head, embed=embed,
                  metadata={"source": f"onnx (opset {g.opset}): {where}"})
    conv = Conversion(model=model, source=f"onnx opset {g.opset}", notes=notes)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        conv.unchecked_reason = "onnxruntime is not installed"
    else:
        conv.checker = lambda steps, seed: _check(path, g, model, data_input, input_labels, t, source_head, steps, seed, seq_inputs)
    return conv


def _fixed_steps(g: Graph, data_input: str, labels: Optional[List[str]], tokens: bool) -> Optional[int]:
    """The sequence length the graph's data input fixes, or None when it is free."""
    vi = next(i for i in g.inputs if i.name == data_input)
    shape = vi.shape or []
    if labels is None or len(labels) != len(shape):
        labels = (["B", "T"] + (["H"] if not tokens else []))
    t_axis = labels.index("T") if "T" in labels else 1
    return shape[t_axis] if t_axis < len(shape) and isinstance(shape[t_axis], int) and shape[t_axis] > 0 else None


def _check(path: str, g: Graph, model: Model, data_input: str, labels: Optional[List[str]], output: str, source_head: str,
           steps: int, seed: int, seq_inputs: Optional[set] = None) -> CheckResult:
    import onnxruntime as ort
    options = ort.SessionOptions()
    # Errors only: the check runs the graph on sequences of every length up to `steps`, and onnxruntime
    # warns each time an output's shape differs from the one recorded at export (e.g. torch.onnx's
    # dynamo exporter records the example's sequence length).
    options.log_severity_level = 3
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    info = {i.name: i for i in sess.get_inputs()}
    vi = next(i for i in g.inputs if i.name == data_input)
    shape = vi.shape or []
    if labels is None or len(labels) != len(shape):
        labels = (["B", "T"] + (["H"] if model.embed is None else []))
    t_axis = labels.index("T")
    fixed_t = shape[t_axis] if t_axis < len(shape) and isinstance(shape[t_axis], int) and shape[t_axis] > 0 else None
    n = fixed_t or steps
    x = random_inputs(model, n, seed)
    lengths = [n] if fixed_t else list(range(1, n + 1))
    ref_rows, src_rows = [], []
    from .. import reference
    full = reference.run(model, x)
    src_axes = ["T", "B", "H"] if model.embed is None else ["T", "B"]
    if sorted(labels) != sorted(src_axes):
        labels = ["B", "T", "H"] if model.embed is None else ["B", "T"]
    perm = [src_axes.index(l) for l in labels]
    elem = info[data_input].type
    for t in lengths:
        if model.embed is None:
            # The graph's own element type (a model exported in double or half takes no float32).
            ftype = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(elem, np.float32)
            base = np.asarray(x[:t], np.float32).astype(ftype)[:, None, :]
        else:
            base = np.asarray(x[:t], np.int32 if "int32" in elem else np.int64)[:, None]
        feeds = {data_input: np.ascontiguousarray(np.transpose(base, perm))}
        for name, i in info.items():
            if name == data_input:
                continue
            dims = [d if isinstance(d, int) else 1 for d in i.shape]
            kind = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(double)": np.float64,
                    "tensor(float16)": np.float16}.get(i.type, np.float32)
            # sequence_lens: the whole sequence; initial states: zero
            feeds[name] = np.full(dims, t, kind) if name in (seq_inputs or ()) else np.zeros(dims, kind)
        y = sess.run([output], feeds)[0].astype(np.float64).reshape(-1, model.output_size)
        if y.shape[0] == 1:
            src_rows.append(y[0])
            ref_rows.append(t - 1)
        elif y.shape[0] == t:
            src_rows.extend(y)
            ref_rows.extend(range(t))
        else:
            raise ExportError(f"the graph output has {y.shape[0]} rows for a {t}-step input")
    ours = full[ref_rows]
    theirs = np.array(src_rows)
    if source_head != model.head:
        theirs = reference.head_activation(theirs, model.head)
    diff = float(np.max(np.abs(ours - theirs)))
    return CheckResult(f"onnxruntime {ort.__version__}", n, diff, "" if not fixed_t else f"the graph fixes the sequence length at {fixed_t}")
