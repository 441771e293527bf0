"""Wire protocol v1 of recurd (DESIGN §4, docs/PROTOCOL.md): input and output payloads, binary and
JSON, encoded and decoded.

The decoders check what the daemon's Swift decoder (``Sources/RecurdWire``) checks, in the same
order, and raise :class:`WireError` (a ``ValueError``) whose ``reason`` is the daemon's counter
label (``magic``, ``length``, ``non_finite``, …) and whose message names the field and its byte
offset::

    >>> from recurd import wire
    >>> m = wire.InputMessage.build(x=[[1, 2, 3], [4, 5, 6]], seq=0)
    >>> wire.decode_input(wire.encode_input(m)) == m
    True

Binary input (32-byte header, little-endian)::

    0 u8 magic 0x52 · 1 u8 version 1 · 2 u8 input kind · 3 u8 target kind · 4 u16 flags
    6 u16 xdim · 8 u16 ydim · 10 u16 reserved · 12 u32 steps · 16 u64 seq · 24 i64 ts
    32 inputs (n·xdim f32 | n u32 | n bytes), then targets (n·ydim f32 | n u32)

Binary output::

    0 u8 magic 0x50 · 1 u8 version 1 · 2 u8 kind (1 vector, 2 top-k) · 3 u8 flags · 4 u16 odim
    6 u16 reserved · 8 u32 steps · 12 u32 model version · 16 u64 seq · 24 i64 ts
    32 predictions (n·odim f32 | n·k (u32 id, f32 p)), n f32 losses, [n f32 anomaly scores]
"""
from __future__ import annotations

import enum
import json
import re
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import numpy as np

__all__ = [
    "INPUT_MAGIC", "OUTPUT_MAGIC", "VERSION", "HEADER_SIZE", "INPUT_HEADER", "OUTPUT_HEADER",
    "InputKind", "TargetKind", "InputFlags", "OutputKind", "OutputFlags",
    "WireError", "InputMessage", "OutputMessage",
    "encode_input", "encode_input_json", "decode_input",
    "encode_output", "encode_output_json", "decode_output",
]

INPUT_MAGIC = 0x52   # 'R'
OUTPUT_MAGIC = 0x50  # 'P'
VERSION = 1
HEADER_SIZE = 32

#: The binary input header: magic, version, input kind, target kind, flags, xdim, ydim, reserved,
#: steps, seq, ts. For hot loops that read or patch headers without decoding whole payloads.
INPUT_HEADER = struct.Struct("<BBBBHHHHIQq")
#: The binary output header: magic, version, kind, flags, odim, reserved, steps, model version,
#: seq, ts.
OUTPUT_HEADER = struct.Struct("<BBBBHHIIQq")
_INPUT_HEADER, _OUTPUT_HEADER = INPUT_HEADER, OUTPUT_HEADER
assert _INPUT_HEADER.size == HEADER_SIZE and _OUTPUT_HEADER.size == HEADER_SIZE

_U64_MAX = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_U32_MAX = (1 << 32) - 1
_U16_MAX = (1 << 16) - 1


class InputKind(enum.IntEnum):
    """Byte 2 of an input payload."""
    FEATURES = 1  #: one f32 vector of xdim per step
    TOKENS = 2    #: one u32 token id per step
    TEXT = 3      #: one byte per step


class TargetKind(enum.IntEnum):
    """Byte 3 of an input payload."""
    NONE = 0
    VALUES = 1    #: one f32 vector of ydim per step
    CLASSES = 2   #: one u32 class id per step


class InputFlags(enum.IntFlag):
    """Bytes 4–5 of an input payload."""
    RESET = 1       #: zero the stream's state before the first step; restart its numbering here
    END = 2         #: forget the stream after the last step
    NO_LEARN = 4    #: keep these steps out of the learning windows
    NO_PREDICT = 8  #: publish nothing for this message


class OutputKind(enum.IntEnum):
    """Byte 2 of an output payload."""
    VECTOR = 1  #: one f32 vector of odim per step
    TOP_K = 2   #: odim = k (u32 id, f32 probability) pairs per step, most probable first


class OutputFlags(enum.IntFlag):
    """Byte 3 of an output payload."""
    NEW_STATE = 1  #: the stream's state was new or reset before this message's first step
    GAP = 2        #: a gap in the stream's seq preceded this message
    ANOMALY = 4    #: n f32 anomaly scores in [0, 1] follow the n losses
    MORE = 8       #: more outputs for the same input message follow


_KNOWN_INPUT_FLAGS = int(InputFlags.RESET | InputFlags.END | InputFlags.NO_LEARN | InputFlags.NO_PREDICT)
_KNOWN_OUTPUT_FLAGS = int(OutputFlags.NEW_STATE | OutputFlags.GAP | OutputFlags.ANOMALY | OutputFlags.MORE)


class WireError(ValueError):
    """A payload that protocol v1 does not allow.

    ``reason`` is the daemon's rejection label (``recurd_rejected_messages_total{reason}``):
    short, magic, version, input_kind, target_kind, flags, reserved, xdim, ydim, empty, length,
    non_finite, json — plus, for outputs, output_kind. ``offset`` is the byte offset of the
    offending field when there is one.
    """

    def __init__(self, reason: str, detail: str, offset: Optional[int] = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.offset = offset


# ------------------------------------------------------------------------------------------ input


def _f32_rows(values: Any, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float32)
    if a.ndim == 0:
        a = a.reshape(1, 1)  # one step of one value
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError(f"{what} must be one step (1-D) or steps × values (2-D), got shape {a.shape}")
    return np.ascontiguousarray(a)


def _u32_ids(values: Any, what: str) -> np.ndarray:
    if isinstance(values, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(values), np.uint8).astype(np.uint32)
    a = np.asarray(values)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{what} must be an id or a 1-D sequence of ids, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{what} must be integers")
    if a.size and (a.min() < 0 or a.max() > _U32_MAX):
        raise ValueError(f"{what} must be in 0…4294967295")
    return a.astype(np.uint32)


@dataclass(eq=False)
class InputMessage:
    """One input payload: zero or more consecutive steps of one stream.

    ``x`` is ``steps × xdim`` float32 (features); ``tokens`` is ``steps`` uint32 (token ids, or the
    bytes of text); ``y`` is ``steps × ydim`` float32 (vector targets); ``labels`` is ``steps``
    uint32 (class targets). ``seq`` None is allowed in JSON only (the daemon then uses the stream's
    next expected seq; the binary form sends 0).
    """

    kind: InputKind = InputKind.FEATURES
    steps: int = 0
    xdim: int = 1
    seq: Optional[int] = 0
    ts: int = 0
    flags: InputFlags = InputFlags(0)
    target_kind: TargetKind = TargetKind.NONE
    ydim: int = 0
    x: Optional[np.ndarray] = None
    tokens: Optional[np.ndarray] = None
    y: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None

    @classmethod
    def build(cls, x: Any = None, *, tokens: Any = None, text: Union[str, bytes, None] = None,
              y: Any = None, labels: Any = None, reset: bool = False, end: bool = False,
              no_learn: bool = False, no_predict: bool = False, seq: Optional[int] = 0, ts: int = 0,
              xdim: Optional[int] = None, kind: Optional[InputKind] = None) -> "InputMessage":
        """A message from Python values: ``x`` one step (1-D) or many (2-D); ``tokens`` an id or
        ids; ``text`` a str (UTF-8) or bytes; ``y`` one target vector (1-D) or one per step
        (2-D); ``labels`` a class id or one per step. With no input at all, a zero-step message
        (needs ``reset`` or ``end``) whose kind and xdim are ``kind``/``xdim`` (default features,
        1)."""
        given = [n for n, v in (("x", x), ("tokens", tokens), ("text", text)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give one of x, tokens, text (got {', '.join(given)})")
        flags = InputFlags(0)
        if reset:
            flags |= InputFlags.RESET
        if end:
            flags |= InputFlags.END
        if no_learn:
            flags |= InputFlags.NO_LEARN
        if no_predict:
            flags |= InputFlags.NO_PREDICT
        m = cls(seq=seq, ts=int(ts), flags=flags)
        if x is not None:
            a = _f32_rows(x, "x")
            m.kind, m.x, m.steps, m.xdim = InputKind.FEATURES, a, a.shape[0], a.shape[1]
            if m.xdim < 1 and m.steps > 0:
                raise ValueError("x has no values")
            if m.steps == 0 and xdim is not None:
                m.xdim = xdim
        elif tokens is not None:
            t = _u32_ids(tokens, "tokens")
            m.kind, m.tokens, m.steps, m.xdim = InputKind.TOKENS, t, t.shape[0], 1
        elif text is not None:
            b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            m.kind, m.tokens, m.steps, m.xdim = InputKind.TEXT, np.frombuffer(b, dtype=np.uint8).astype(np.uint32), len(b), 1
        else:
            m.kind = InputKind(kind) if kind is not None else InputKind.FEATURES
            m.xdim = (xdim or 1) if m.kind == InputKind.FEATURES else 1
            m.steps = 0
            if m.kind == InputKind.FEATURES:
                m.x = np.zeros((0, m.xdim), np.float32)
            else:
                m.tokens = np.zeros(0, np.uint32)
        if y is not None and labels is not None:
            raise ValueError("give one of y, labels")
        if y is not None:
            a = _f32_rows(y, "y")
            if a.shape[0] != m.steps:
                raise ValueError(f"y has {a.shape[0]} target{'s' if a.shape[0] != 1 else ''} for {m.steps} step{'s' if m.steps != 1 else ''}")
            m.target_kind, m.y, m.ydim = TargetKind.VALUES, a, a.shape[1]
        elif labels is not None:
            c = _u32_ids(labels, "labels")
            if c.shape[0] != m.steps:
                raise ValueError(f"labels has {c.shape[0]} target{'s' if c.shape[0] != 1 else ''} for {m.steps} step{'s' if m.steps != 1 else ''}")
            m.target_kind, m.labels, m.ydim = TargetKind.CLASSES, c, 1
        return m

    # Views that are always arrays, whatever the kind.
    @property
    def features(self) -> np.ndarray:
        return self.x if self.x is not None else np.zeros((self.steps if self.kind == InputKind.FEATURES else 0, self.xdim), np.float32)

    @property
    def text(self) -> Optional[bytes]:
        """The bytes of a text message (None for other kinds)."""
        if self.kind != InputKind.TEXT:
            return None
        return bytes(self.tokens.astype(np.uint8)) if self.tokens is not None else b""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputMessage):
            return NotImplemented
        def same(a, b):
            if a is None or b is None:
                return (a is None or a.size == 0) and (b is None or b.size == 0)
            return a.shape == b.shape and np.array_equal(a, b)
        return (self.kind == other.kind and self.steps == other.steps and self.xdim == other.xdim
                and self.seq == other.seq and self.ts == other.ts and int(self.flags) == int(other.flags)
                and self.target_kind == other.target_kind and self.ydim == other.ydim
                and same(self.x, other.x) and same(self.tokens, other.tokens)
                and same(self.y, other.y) and same(self.labels, other.labels))

    def __repr__(self) -> str:
        parts = [f"kind={self.kind.name}", f"steps={self.steps}", f"xdim={self.xdim}", f"seq={self.seq}", f"ts={self.ts}"]
        if self.flags:
            parts.append(f"flags={self.flags!r}")
        if self.target_kind != TargetKind.NONE:
            parts.append(f"target={self.target_kind.name}/{self.ydim}")
        return f"InputMessage({', '.join(parts)})"

    def _check_consistent(self) -> None:
        """Raises ValueError if the fields contradict each other (before encoding)."""
        k = InputKind(self.kind)
        if self.steps == 0 and not self.flags & (InputFlags.RESET | InputFlags.END):
            raise WireError("empty", "a message without steps needs RESET or END (reset=True or end=True)", 12)
        if k == InputKind.FEATURES:
            x = self.features
            if x.shape != (self.steps, self.xdim):
                raise ValueError(f"x has shape {x.shape}; steps × xdim is ({self.steps}, {self.xdim})")
            if not np.all(np.isfinite(x)):
                i = int(np.flatnonzero(~np.isfinite(x.ravel()))[0])
                raise WireError("non_finite", f"input value {x.ravel()[i]} at step {i // max(self.xdim, 1)}, element {i % max(self.xdim, 1)}",
                                HEADER_SIZE + 4 * i)
        else:
            t = self.tokens if self.tokens is not None else np.zeros(0, np.uint32)
            if t.shape != (self.steps,):
                raise ValueError(f"tokens has shape {t.shape}; expected ({self.steps},)")
            if k == InputKind.TEXT and t.size and int(t.max()) > 255:
                raise ValueError("text steps are bytes (0…255)")
        if self.target_kind == TargetKind.VALUES:
            if self.y is None or self.y.shape != (self.steps, self.ydim):
                raise ValueError(f"y must have shape ({self.steps}, {self.ydim})")
            if not np.all(np.isfinite(self.y)):
                raise WireError("non_finite", "a target value is NaN or infinite")
        elif self.target_kind == TargetKind.CLASSES:
            if self.labels is None or self.labels.shape != (self.steps,):
                raise ValueError(f"labels must have shape ({self.steps},)")


def encode_input(m: InputMessage) -> bytes:
    """The binary payload of ``m`` (seq None is sent as 0)."""
    m._check_consistent()
    k, tk = InputKind(m.kind), TargetKind(m.target_kind)
    if not 0 <= m.xdim <= _U16_MAX or not 0 <= m.ydim <= _U16_MAX:
        raise ValueError("xdim and ydim must fit in u16")
    if not 0 <= m.steps <= _U32_MAX:
        raise ValueError("steps must fit in u32")
    seq = 0 if m.seq is None else int(m.seq)
    if not 0 <= seq <= _U64_MAX:
        raise ValueError("seq must fit in u64")
    if not _I64_MIN <= int(m.ts) <= _I64_MAX:
        raise ValueError("ts must fit in i64")
    out = [_INPUT_HEADER.pack(INPUT_MAGIC, VERSION, int(k), int(tk), int(m.flags) & 0xFFFF, m.xdim, m.ydim, 0,
                              m.steps, seq, int(m.ts))]
    if k == InputKind.FEATURES:
        out.append(m.features.astype("<f4").tobytes())
    elif k == InputKind.TOKENS:
        out.append(m.tokens.astype("<u4").tobytes())
    else:
        out.append(m.tokens.astype(np.uint8).tobytes())
    if tk == TargetKind.VALUES:
        out.append(m.y.astype("<f4").tobytes())
    elif tk == TargetKind.CLASSES:
        out.append(m.labels.astype("<u4").tobytes())
    return b"".join(out)


def _num(v: float) -> str:
    """A float32 as the daemon writes it: %.9g (exact for float32), null for NaN/∞."""
    f = float(v)
    if not math.isfinite(f):
        return "null"
    return "%.9g" % f


def _row(values: Iterable[float]) -> str:
    return "[" + ",".join(_num(v) for v in values) + "]"


def encode_input_json(m: InputMessage) -> bytes:
    """The JSON payload of ``m``: ``x``/``y``/``label`` for one step, ``xs``/``ys``/``labels``
    otherwise, ``tokens`` or ``text``; ``seq`` left out when None; flags only when set. Text must
    be valid UTF-8."""
    m._check_consistent()
    if m.seq is not None and int(m.seq) < 0:
        raise ValueError(f"seq {m.seq} is negative; seq must fit in u64, as in the binary form")
    for name, v in (("seq", m.seq), ("ts", m.ts)):
        if v is not None and abs(int(v)) >= 9.2e18:
            raise ValueError(f"{name} {v} does not fit a JSON input (the daemon reads JSON integers below 9.2e18); use the binary form")
    parts = []
    if m.seq is not None:
        parts.append(f'"seq":{int(m.seq)}')
    parts.append(f'"ts":{int(m.ts)}')
    k = InputKind(m.kind)
    if m.steps > 0:
        if k == InputKind.FEATURES:
            x = m.features
            parts.append('"x":' + _row(x[0]) if m.steps == 1 else '"xs":[' + ",".join(_row(r) for r in x) + "]")
        elif k == InputKind.TOKENS:
            parts.append('"tokens":[' + ",".join(str(int(t)) for t in m.tokens) + "]")
        else:
            try:
                s = m.text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"text is not valid UTF-8 at byte {e.start}; JSON can only carry UTF-8 text (use the binary form)") from None
            parts.append('"text":' + json.dumps(s, ensure_ascii=False))
    tk = TargetKind(m.target_kind)
    if tk == TargetKind.VALUES:
        parts.append('"y":' + _row(m.y[0]) if m.steps == 1 else '"ys":[' + ",".join(_row(r) for r in m.y) + "]")
    elif tk == TargetKind.CLASSES:
        parts.append(f'"label":{int(m.labels[0])}' if m.steps == 1 else '"labels":[' + ",".join(str(int(c)) for c in m.labels) + "]")
    for name, flag in (("reset", InputFlags.RESET), ("end", InputFlags.END), ("no_learn", InputFlags.NO_LEARN), ("no_predict", InputFlags.NO_PREDICT)):
        if m.flags & flag:
            parts.append(f'"{name}":true')
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def decode_input(payload: Union[bytes, bytearray, memoryview]) -> InputMessage:
    """Decodes a binary or JSON (first byte ``{``) input payload, checking what the daemon checks
    (structure only: whether a model can take the message is the daemon's business)."""
    p = bytes(payload)
    if p[:1] == b"{":
        return _decode_input_json(p)
    if len(p) < HEADER_SIZE:
        if p and p[0] != INPUT_MAGIC:
            raise WireError("magic", f"byte 0 is 0x{p[0]:x}; expected 0x52 ('R', binary) or '{{' (JSON)", 0)
        raise WireError("short", f"payload is {len(p)} bytes; the binary header needs {HEADER_SIZE}", len(p))
    magic, version, kind, tkind, flags, xdim, ydim, reserved, steps, seq, ts = _INPUT_HEADER.unpack_from(p)
    if magic != INPUT_MAGIC:
        raise WireError("magic", f"byte 0 is 0x{magic:x}; expected 0x52 ('R', binary) or '{{' (JSON)", 0)
    if version != VERSION:
        raise WireError("version", f"byte 1: version {version} is not supported (this client speaks 1)", 1)
    if kind not in (1, 2, 3):
        raise WireError("input_kind", f"byte 2: input kind {kind} is unknown (1 f32 vector, 2 u32 token, 3 text)", 2)
    if tkind not in (0, 1, 2):
        raise WireError("target_kind", f"byte 3: target kind {tkind} is unknown (0 none, 1 f32 vector, 2 u32 class)", 3)
    if flags & ~_KNOWN_INPUT_FLAGS:
        raise WireError("flags", f"byte 4: flags 0x{flags:x} set unknown bits (known: 0xf)", 4)
    kind, tkind, flags = InputKind(kind), TargetKind(tkind), InputFlags(flags)
    if steps == 0 and not flags & (InputFlags.RESET | InputFlags.END):
        raise WireError("empty", "byte 12: zero steps is allowed only with RESET or END", 12)
    # A zero-step RESET or END carries no values: its kinds and dims say nothing and are not checked.
    if steps > 0:
        if kind == InputKind.FEATURES:
            if xdim < 1:
                raise WireError("xdim", "byte 6: xdim is 0 for f32 vector input", 6)
        elif xdim != 1:
            raise WireError("xdim", f"byte 6: xdim is {xdim}; it must be 1 for token and text input", 6)
        if tkind == TargetKind.NONE and ydim != 0:
            raise WireError("ydim", f"byte 8: ydim is {ydim} but there are no targets (must be 0)", 8)
        if tkind == TargetKind.VALUES and ydim < 1:
            raise WireError("ydim", "byte 8: ydim is 0 for f32 vector targets", 8)
        if tkind == TargetKind.CLASSES and ydim != 1:
            raise WireError("ydim", f"byte 8: ydim is {ydim}; it must be 1 for class targets", 8)
    if reserved != 0:
        raise WireError("reserved", f"byte 10: reserved field is {reserved}, must be 0", 10)
    input_bytes = {InputKind.FEATURES: steps * xdim * 4, InputKind.TOKENS: steps * 4, InputKind.TEXT: steps}[kind]
    target_bytes = steps * 4 if tkind == TargetKind.CLASSES else steps * ydim * 4
    body = len(p) - HEADER_SIZE
    if body != input_bytes + target_bytes:
        raise WireError("length", f"body from byte 32 is {body} bytes; {steps} step{'' if steps == 1 else 's'} need "
                                  f"{input_bytes} input + {target_bytes} target bytes", HEADER_SIZE)
    m = InputMessage(kind=kind, steps=steps, xdim=xdim, seq=seq, ts=ts, flags=flags, target_kind=tkind, ydim=ydim)
    off = HEADER_SIZE
    if kind == InputKind.FEATURES:
        m.x = _finite_floats(p, off, steps, xdim, "input")
    elif kind == InputKind.TOKENS:
        m.tokens = np.frombuffer(p, "<u4", steps, off).astype(np.uint32)
    else:
        m.tokens = np.frombuffer(p, np.uint8, steps, off).astype(np.uint32)
    off += input_bytes
    if tkind == TargetKind.VALUES:
        m.y = _finite_floats(p, off, steps, ydim, "target")
    elif tkind == TargetKind.CLASSES:
        m.labels = np.frombuffer(p, "<u4", steps, off).astype(np.uint32)
    return m


def _finite_floats(p: bytes, offset: int, steps: int, width: int, what: str) -> np.ndarray:
    a = np.frombuffer(p, "<f4", steps * width, offset).astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise WireError("non_finite", f"{what} value {a[i]} at byte offset {offset + 4 * i} (step {i // width}, element {i % width})",
                        offset + 4 * i)
    return a.reshape(steps, width)


_JSON_INPUT_FIELDS = {"seq", "ts", "x", "xs", "tokens", "text", "y", "ys", "label", "labels", "reset", "end", "no_learn", "no_predict"}


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> Optional[int]:
    if not _is_number(v):
        return None
    if isinstance(v, float):
        if not math.isfinite(v) or v != round(v) or abs(v) >= 9.2e18:
            return None
        return int(v)
    return v if abs(v) < 9.2e18 else None


def _unsigned(v: Any, field: str, step: int) -> int:
    n = _integer(v)
    if n is None or n < 0 or n > _U32_MAX:
        raise WireError("json", f"'{field}' step {step} is not an integer in 0…4294967295")
    return n


def _float_row(v: Any, field: str, step: int) -> list:
    if not isinstance(v, list):
        raise WireError("json", f"'{field}' step {step} must be an array of numbers")
    row = []
    for j, item in enumerate(v):
        if not _is_number(item):
            raise WireError("json", f"'{field}' step {step} element {j} is not a number")
        with np.errstate(over="ignore"):
            f = float(np.float32(item)) if abs(item) < 1e300 else math.inf
        if not math.isfinite(f):
            raise WireError("non_finite", f"'{field}' step {step} element {j} ({item}) is not a finite float32")
        row.append(f)
    return row


def _float_rows(v: Any, field: str, dim_reason: str) -> tuple:
    if not isinstance(v, list):
        raise WireError("json", f"'{field}' must be an array of arrays of numbers")
    rows, width = [], -1
    for i, r in enumerate(v):
        row = _float_row(r, field, i)
        if width < 0:
            width = len(row)
        if len(row) != width or width <= 0:
            raise WireError(dim_reason, f"'{field}' step {i} has {len(row)} values; step 0 has {width}")
        rows.append(row)
    return rows, max(width, 1)


class _RepeatedField(Exception):
    pass


def _unique_fields(pairs):
    """A JSON object as a dict, refusing a field given twice (RFC 8259 leaves it open; the daemon refuses it)."""
    o = {}
    for k, v in pairs:
        if k in o:
            raise _RepeatedField(k)
        o[k] = v
    return o


def _decode_input_json(p: bytes) -> InputMessage:
    try:
        text = p.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WireError("json", f"invalid JSON: not UTF-8 at byte offset {e.start}", e.start) from None
    try:
        o = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_fields)
    except _RepeatedField as e:
        # Where the field is named the second time (these objects are flat).
        key = json.dumps(e.args[0]).encode("utf-8")
        hits = [m.start() for m in re.finditer(re.escape(key) + rb"\s*:", p)]
        at = hits[1] if len(hits) > 1 else None
        where = f" (byte offset {at})" if at is not None else ""
        raise WireError("json", f"invalid JSON: field '{e.args[0]}' given twice in one object{where}", at) from None
    except json.JSONDecodeError as e:
        at = len(text[:e.pos].encode("utf-8"))
        raise WireError("json", f"invalid JSON: {e.msg} (byte offset {at})", at) from None
    except ValueError as e:
        raise WireError("json", f"invalid JSON: {e}") from None
    if not isinstance(o, dict):
        raise WireError("json", "the payload is not a JSON object")
    unknown = sorted(k for k in o if k not in _JSON_INPUT_FIELDS)
    if unknown:
        raise WireError("json", f"unknown field '{unknown[0]}'")
    flags = InputFlags(0)
    for name, flag in (("reset", InputFlags.RESET), ("end", InputFlags.END), ("no_learn", InputFlags.NO_LEARN), ("no_predict", InputFlags.NO_PREDICT)):
        if name in o:
            if not isinstance(o[name], bool):
                raise WireError("json", f"'{name}' must be true or false")
            if o[name]:
                flags |= flag
    seq = None
    if "seq" in o:
        n = _integer(o["seq"])
        if n is None or n < 0:
            raise WireError("json", "'seq' must be a non-negative integer")
        seq = n
    ts = 0
    if "ts" in o:
        n = _integer(o["ts"])
        if n is None:
            raise WireError("json", "'ts' must be an integer (ns since the Unix epoch)")
        ts = n
    inputs = [f for f in ("x", "xs", "tokens", "text") if f in o]
    if len(inputs) > 1:
        raise WireError("json", f"give one of x, xs, tokens, text (got {', '.join(inputs)})")
    m = InputMessage(kind=InputKind.FEATURES, steps=0, xdim=1, seq=seq, ts=ts, flags=flags)
    field = inputs[0] if inputs else None
    if field == "x":
        row = _float_row(o["x"], "x", 0)
        if not row:
            raise WireError("xdim", "'x' is empty")
        m.x, m.xdim, m.steps = np.array([row], np.float32), len(row), 1
    elif field == "xs":
        rows, width = _float_rows(o["xs"], "xs", "xdim")
        m.x = np.array(rows, np.float32).reshape(len(rows), width)
        m.xdim, m.steps = width, len(rows)
    elif field == "tokens":
        if not isinstance(o["tokens"], list):
            raise WireError("json", "'tokens' must be an array of integers")
        m.tokens = np.array([_unsigned(v, "tokens", i) for i, v in enumerate(o["tokens"])], np.uint32)
        m.kind, m.steps = InputKind.TOKENS, len(m.tokens)
    elif field == "text":
        if not isinstance(o["text"], str):
            raise WireError("json", "'text' must be a string")
        b = o["text"].encode("utf-8", "surrogatepass")
        m.tokens = np.frombuffer(b, np.uint8).astype(np.uint32)
        m.kind, m.steps = InputKind.TEXT, len(b)
    else:
        m.x = np.zeros((0, 1), np.float32)
    if m.steps == 0 and not flags & (InputFlags.RESET | InputFlags.END):
        raise WireError("empty", "no steps (x, xs, tokens or text) and neither reset nor end")
    targets = [f for f in ("y", "ys", "label", "labels") if f in o]
    if len(targets) > 1:
        raise WireError("json", f"give one of y, ys, label, labels (got {', '.join(targets)})")
    if targets:
        f = targets[0]
        if f == "y":
            row = _float_row(o["y"], "y", 0)
            if not row:
                raise WireError("ydim", "'y' is empty")
            m.y, m.ydim, m.target_kind, count = np.array([row], np.float32), len(row), TargetKind.VALUES, 1
        elif f == "ys":
            rows, width = _float_rows(o["ys"], "ys", "ydim")
            m.y, m.ydim, m.target_kind, count = np.array(rows, np.float32).reshape(len(rows), width), width, TargetKind.VALUES, len(rows)
        elif f == "label":
            m.labels, m.ydim, m.target_kind, count = np.array([_unsigned(o["label"], "label", 0)], np.uint32), 1, TargetKind.CLASSES, 1
        else:
            if not isinstance(o["labels"], list):
                raise WireError("json", "'labels' must be an array of integers")
            m.labels = np.array([_unsigned(v, "labels", i) for i, v in enumerate(o["labels"])], np.uint32)
            m.ydim, m.target_kind, count = 1, TargetKind.CLASSES, len(m.labels)
        if count != m.steps:
            raise WireError("json", f"'{f}' has {count} target{'' if count == 1 else 's'} for {m.steps} step{'' if m.steps == 1 else 's'}")
    return m


# ----------------------------------------------------------------------------------------- output


@dataclass(eq=False)
class OutputMessage:
    """One output payload: the predictions of a run of consecutive steps of one stream.

    ``values`` is ``steps × odim`` float32: the head's outputs, or for top-k the probabilities
    with ``ids`` (``steps × k`` uint32, most probable first). ``losses`` has one float32 per step
    (NaN where nothing was revealed); ``anomaly`` one score per step when the ANOMALY flag is set.
    """

    kind: OutputKind = OutputKind.VECTOR
    flags: OutputFlags = OutputFlags(0)
    odim: int = 0
    steps: int = 0
    model_version: int = 0
    seq: int = 0
    ts: int = 0
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    ids: Optional[np.ndarray] = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    anomaly: Optional[np.ndarray] = None

    @classmethod
    def build(cls, values: Any, losses: Any = None, *, ids: Any = None, anomaly: Any = None, seq: int = 0, ts: int = 0,
              model_version: int = 0, new_state: bool = False, gap: bool = False, more: bool = False) -> "OutputMessage":
        """An output message from arrays (``values`` steps × odim; ``ids`` for top-k)."""
        v = np.asarray(values, np.float32)
        if v.ndim != 2:
            raise ValueError("values must be steps × odim")
        n, odim = v.shape
        lo = np.full(n, np.nan, np.float32) if losses is None else np.asarray(losses, np.float32).reshape(n)
        flags = OutputFlags(0)
        if new_state:
            flags |= OutputFlags.NEW_STATE
        if gap:
            flags |= OutputFlags.GAP
        if anomaly is not None:
            flags |= OutputFlags.ANOMALY
        if more:
            flags |= OutputFlags.MORE
        m = cls(kind=OutputKind.VECTOR if ids is None else OutputKind.TOP_K, flags=flags, odim=odim, steps=n,
                model_version=model_version, seq=seq, ts=ts, values=v, losses=lo)
        if ids is not None:
            m.ids = np.asarray(ids, np.uint32).reshape(n, odim)
        if anomaly is not None:
            m.anomaly = np.asarray(anomaly, np.float32).reshape(n)
        return m

    @property
    def new_state(self) -> bool:
        return bool(self.flags & OutputFlags.NEW_STATE)

    @property
    def gap(self) -> bool:
        return bool(self.flags & OutputFlags.GAP)

    @property
    def more(self) -> bool:
        return bool(self.flags & OutputFlags.MORE)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputMessage):
            return NotImplemented
        def same(a, b):
            if a is None or b is None:
                return a is None and b is None
            return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        return (self.kind == other.kind and int(self.flags) == int(other.flags) and self.odim == other.odim
                and self.steps == other.steps and self.model_version == other.model_version and self.seq == other.seq
                and self.ts == other.ts and same(self.values, other.values) and same(self.ids, other.ids)
                and same(self.losses, other.losses) and same(self.anomaly, other.anomaly))

    def __repr__(self) -> str:
        return (f"OutputMessage(kind={OutputKind(self.kind).name}, flags={OutputFlags(self.flags)!r}, odim={self.odim}, "
                f"steps={self.steps}, model_version={self.model_version}, seq={self.seq}, ts={self.ts})")

    def _check_consistent(self) -> None:
        if self.values.shape != (self.steps, self.odim):
            raise ValueError(f"values has shape {self.values.shape}; expected ({self.steps}, {self.odim})")
        if OutputKind(self.kind) == OutputKind.TOP_K and (self.ids is None or self.ids.shape != (self.steps, self.odim)):
            raise ValueError(f"top-k ids must have shape ({self.steps}, {self.odim})")
        if self.losses.shape != (self.steps,):
            raise ValueError(f"losses must have shape ({self.steps},)")
        has = bool(self.flags & OutputFlags.ANOMALY)
        if has != (self.anomaly is not None):
            raise ValueError("the ANOMALY flag and the anomaly scores must go together")
        if has and self.anomaly.shape != (self.steps,):
            raise ValueError(f"anomaly must have shape ({self.steps},)")


def encode_output(m: OutputMessage) -> bytes:
    """The binary payload of ``m`` (as the daemon publishes it)."""
    m._check_consistent()
    head = _OUTPUT_HEADER.pack(OUTPUT_MAGIC, VERSION, int(m.kind), int(m.flags) & 0xFF, m.odim, 0, m.steps,
                               m.model_version & _U32_MAX, m.seq, m.ts)
    if OutputKind(m.kind) == OutputKind.VECTOR:
        body = m.values.astype("<f4").tobytes()
    else:
        pairs = np.empty((m.steps, m.odim), dtype=[("id", "<u4"), ("p", "<f4")])
        pairs["id"], pairs["p"] = m.ids, m.values
        body = pairs.tobytes()
    tail = m.losses.astype("<f4").tobytes()
    if m.anomaly is not None:
        tail += m.anomaly.astype("<f4").tobytes()
    return head + body + tail


def encode_output_json(m: OutputMessage) -> bytes:
    """The JSON payload, byte for byte as the daemon writes it (``%.9g`` numbers, null for NaN):
    ``{"seq":7,"ts":0,"version":3,"new":false,"gap":false,"y":[[…]],"loss":[…]}`` with ``"top"``
    instead of ``"y"`` for top-k, then ``"anomaly":[…]`` when scored and ``"more":true`` when set."""
    m._check_consistent()
    s = (f'{{"seq":{m.seq},"ts":{m.ts},"version":{m.model_version},"new":{"true" if m.new_state else "false"},'
         f'"gap":{"true" if m.gap else "false"},')
    if OutputKind(m.kind) == OutputKind.VECTOR:
        s += '"y":[' + ",".join(_row(r) for r in m.values) + "]"
    else:
        s += '"top":[' + ",".join("[" + ",".join(f"[{int(i)},{_num(p)}]" for i, p in zip(ri, rp)) + "]"
                                  for ri, rp in zip(m.ids, m.values)) + "]"
    s += ',"loss":' + _row(m.losses)
    if m.anomaly is not None:
        s += ',"anomaly":' + _row(m.anomaly)
    if m.more:
        s += ',"more":true'
    return (s + "}").encode("utf-8")


def decode_output(payload: Union[bytes, bytearray, memoryview]) -> OutputMessage:
    """Decodes a binary or JSON output payload."""
    p = bytes(payload)
    if p[:1] == b"{":
        return _decode_output_json(p)
    if len(p) < HEADER_SIZE:
        if p and p[0] != OUTPUT_MAGIC:
            raise WireError("magic", f"byte 0 is 0x{p[0]:x}; expected 0x50 ('P', binary) or '{{' (JSON)", 0)
        raise WireError("short", f"output payload is {len(p)} bytes; the header needs {HEADER_SIZE}", len(p))
    magic, version, kind, flags, odim, reserved, steps, mver, seq, ts = _OUTPUT_HEADER.unpack_from(p)
    if magic != OUTPUT_MAGIC:
        raise WireError("magic", f"byte 0 is 0x{magic:x}; expected 0x50 ('P', binary) or '{{' (JSON)", 0)
    if version != VERSION:
        raise WireError("version", f"byte 1: version {version} is not supported (this client speaks 1)", 1)
    if kind not in (1, 2):
        raise WireError("output_kind", f"byte 2: output kind {kind} is unknown (1 f32 vector, 2 top-k)", 2)
    if flags & ~_KNOWN_OUTPUT_FLAGS:
        raise WireError("flags", f"byte 3: flags 0x{flags:x} set unknown bits (known: 0xf)", 3)
    if reserved != 0:
        raise WireError("reserved", f"byte 6: reserved field is {reserved}, must be 0", 6)
    kind, flags = OutputKind(kind), OutputFlags(flags)
    per = 4 if kind == OutputKind.VECTOR else 8
    has_anomaly = bool(flags & OutputFlags.ANOMALY)
    need = steps * odim * per + steps * 4 * (2 if has_anomaly else 1)
    body = len(p) - HEADER_SIZE
    if body != need:
        extra = f" + {steps * 4} anomaly" if has_anomaly else ""
        raise WireError("length", f"output body from byte 32 is {body} bytes; {steps} step{'' if steps == 1 else 's'} of {odim} need "
                                  f"{steps * odim * per} prediction + {steps * 4} loss{extra} bytes", HEADER_SIZE)
    off = HEADER_SIZE
    m = OutputMessage(kind=kind, flags=flags, odim=odim, steps=steps, model_version=mver, seq=seq, ts=ts)
    if kind == OutputKind.VECTOR:
        m.values = np.frombuffer(p, "<f4", steps * odim, off).astype(np.float32).reshape(steps, odim)
    else:
        pairs = np.frombuffer(p, [("id", "<u4"), ("p", "<f4")], steps * odim, off)
        m.ids = pairs["id"].astype(np.uint32).reshape(steps, odim)
        m.values = pairs["p"].astype(np.float32).reshape(steps, odim)
    off += steps * odim * per
    m.losses = np.frombuffer(p, "<f4", steps, off).astype(np.float32)
    off += steps * 4
    if has_anomaly:
        m.anomaly = np.frombuffer(p, "<f4", steps, off).astype(np.float32)
    return m


def _json_floats(v: Any, field: str) -> list:
    if not isinstance(v, list):
        raise WireError("json", f"'{field}' must be an array")
    out = []
    for i, item in enumerate(v):
        if item is None:
            out.append(math.nan)
        elif _is_number(item):
            out.append(float(item))
        else:
            raise WireError("json", f"'{field}' element {i} is not a number or null")
    return out


def _parse_int(s: str) -> Any:
    return -0.0 if s == "-0" else int(s)  # keep the sign of a -0 value (%.9g writes it so)


def _decode_output_json(p: bytes) -> OutputMessage:
    try:
        o = json.loads(p.decode("utf-8"), parse_constant=_reject_constant, parse_int=_parse_int)
    except (ValueError, UnicodeDecodeError):
        raise WireError("json", f"invalid JSON ({len(p)} bytes)") from None
    if not isinstance(o, dict):
        raise WireError("json", "the output is not a JSON object")

    def integer(name: str, lo: int, hi: int, default: Optional[int] = None) -> int:
        if name not in o:
            if default is None:
                raise WireError("json", f"output has no '{name}'")
            return default
        v = o[name]
        n = v if isinstance(v, int) and not isinstance(v, bool) else (int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53 else None)
        if n is None or not lo <= n <= hi:
            raise WireError("json", f"'{name}' must be an integer in {lo}…{hi}")
        return n

    def boolean(name: str) -> bool:
        v = o.get(name, False)
        if not isinstance(v, bool):
            raise WireError("json", f"'{name}' must be true or false")
        return v

    flags = OutputFlags(0)
    if boolean("new"):
        flags |= OutputFlags.NEW_STATE
    if boolean("gap"):
        flags |= OutputFlags.GAP
    if boolean("more"):
        flags |= OutputFlags.MORE
    m = OutputMessage(seq=integer("seq", 0, _U64_MAX), ts=integer("ts", _I64_MIN, _I64_MAX, 0),
                      model_version=integer("version", 0, _U32_MAX))
    if "loss" not in o:
        raise WireError("json", "output has no 'loss'")
    losses = _json_floats(o["loss"], "loss")
    steps = len(losses)
    if "y" in o:
        rows = o["y"]
        if not isinstance(rows, list) or len(rows) != steps:
            raise WireError("json", f"'y' must be an array of {steps} rows (one per loss)")
        vals = [_json_floats(r, f"y[{i}]") for i, r in enumerate(rows)]
        odim = len(vals[0]) if vals else 0
        if any(len(r) != odim for r in vals):
            raise WireError("json", "'y' rows differ in length")
        m.kind, m.odim = OutputKind.VECTOR, odim
        m.values = np.array(vals, np.float32).reshape(steps, odim)
    elif "top" in o:
        rows = o["top"]
        if not isinstance(rows, list) or len(rows) != steps:
            raise WireError("json", f"'top' must be an array of {steps} rows (one per loss)")
        ids, probs, k = [], [], None
        for i, r in enumerate(rows):
            if not isinstance(r, list) or (k is not None and len(r) != k):
                raise WireError("json", f"'top' row {i} must be an array of {k if k is not None else 'k'} [id, p] pairs")
            k = len(r)
            for j, pair in enumerate(r):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise WireError("json", f"'top' row {i} pair {j} must be [id, p]")
                ids.append(_unsigned(pair[0], "top", i))
                probs.append(_json_floats([pair[1]], "top")[0])
        k = k or 0
        m.kind, m.odim = OutputKind.TOP_K, k
        m.ids = np.array(ids, np.uint32).reshape(steps, k)
        m.values = np.array(probs, np.float32).reshape(steps, k)
    else:
        raise WireError("json", "output has neither 'y' nor 'top'")
    m.steps = steps
    m.losses = np.array(losses, np.float32)
    if "anomaly" in o:
        a = _json_floats(o["anomaly"], "anomaly")
        if len(a) != steps:
            raise WireError("json", f"'anomaly' has {len(a)} scores for {steps} steps")
        m.anomaly = np.array(a, np.float32)
        flags |= OutputFlags.ANOMALY
    m.flags = flags
    return m
