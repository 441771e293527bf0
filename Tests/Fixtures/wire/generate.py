#!/usr/bin/env python3
"""Golden payloads of recurd's wire protocol v1 (DESIGN §4, docs/PROTOCOL.md).

    python3 Tests/Fixtures/wire/generate.py        # needs numpy; uses Clients/python/src/recurd/wire.py

Writes, beside this file, one file per payload (`input_*.bin|json`, `output_*.bin|json`,
`invalid_*`) and `manifest.json`, which lists every file with its decoded fields (valid payloads)
or the rejection reason and byte offset (invalid ones). Deterministic: a rerun writes identical
files. Both the Swift codec tests and Clients/python/tests read them.

Manifest conventions: float values are chosen to be exact in float32 or written with 9
significant digits (exact for float32); `null` in a float list is NaN; `seq` null means a JSON
input without "seq"; `ts` is an integer (ns since the Unix epoch).
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "Clients", "python", "src"))

from recurd import wire  # noqa: E402
from recurd.wire import InputFlags, InputMessage, OutputFlags, OutputMessage  # noqa: E402

files = []


def f32list(a):
    return None if a is None else [[None if math.isnan(v) else float("%.9g" % v) for v in row] for row in np.asarray(a, np.float32).tolist()]


def f32flat(a):
    return None if a is None else [None if math.isnan(v) else float("%.9g" % v) for v in np.asarray(a, np.float32).tolist()]


def flag_names(flags, enum):
    return [f.name for f in enum if flags & f]


def input_fields(m: InputMessage):
    return {
        "kind": {1: "features", 2: "tokens", 3: "text"}[int(m.kind)],
        "input_kind": int(m.kind), "target_kind": int(m.target_kind),
        "flags": int(m.flags), "flag_names": flag_names(m.flags, InputFlags),
        "xdim": m.xdim, "ydim": m.ydim, "steps": m.steps, "seq": m.seq, "ts": m.ts,
        "x": f32list(m.x) if int(m.kind) == 1 else None,
        "tokens": m.tokens.tolist() if int(m.kind) != 1 else None,
        "text": m.text.decode("utf-8", "backslashreplace") if int(m.kind) == 3 else None,
        "y": f32list(m.y), "labels": None if m.labels is None else m.labels.tolist(),
    }


def output_fields(m: OutputMessage):
    return {
        "kind": {1: "vector", 2: "top_k"}[int(m.kind)], "output_kind": int(m.kind),
        "flags": int(m.flags), "flag_names": flag_names(m.flags, OutputFlags),
        "odim": m.odim, "steps": m.steps, "model_version": m.model_version, "seq": m.seq, "ts": m.ts,
        "values": f32list(m.values), "ids": None if m.ids is None else m.ids.tolist(),
        "losses": f32flat(m.losses), "anomaly": f32flat(m.anomaly), "more": m.more,
    }


def write(name, data, entry):
    with open(os.path.join(HERE, name), "wb") as fh:
        fh.write(data)
    entry = dict(file=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), **entry)
    files.append(entry)


def valid_input(name, m: InputMessage, note, json_form=True):
    write(f"{name}.bin", wire.encode_input(m), {"direction": "input", "encoding": "binary", "note": note, "fields": input_fields(m)})
    if json_form:
        data = wire.encode_input_json(m)
        back = wire.decode_input(data)
        assert back == m, (name, back, m)
        write(f"{name}.json", data, {"direction": "input", "encoding": "json", "note": note, "fields": input_fields(m)})


def valid_output(name, m: OutputMessage, note):
    write(f"{name}.bin", wire.encode_output(m), {"direction": "output", "encoding": "binary", "note": note, "fields": output_fields(m)})
    data = wire.encode_output_json(m)
    back = wire.decode_output(data)
    assert back == m, (name, back, m)
    write(f"{name}.json", data, {"direction": "output", "encoding": "json", "note": note, "fields": output_fields(m)})


def invalid(name, direction, data, note):
    decode = wire.decode_input if direction == "input" else wire.decode_output
    try:
        decode(data)
    except wire.WireError as e:
        write(name, data, {"direction": direction, "encoding": "json" if data[:1] == b"{" else "binary", "note": note,
                           "error": {"reason": e.reason, "offset": e.offset, "message": str(e)}})
        return
    raise AssertionError(f"{name} was accepted")


TS = 1_700_000_000_123_456_789
B = InputMessage.build

# ------------------------------------------------------------------ inputs
valid_input("input_features_1step", B(x=[0.5, -1.25, 3.0], seq=0, ts=0), "one step of 3 features")
valid_input("input_features_2steps", B(x=[[1, 2, 3], [4.5, -5.5, 0.1]], seq=41, ts=TS), "two steps of 3 features; 0.1 is not exact in f32")
valid_input("input_features_targets_values", B(x=[[1, 2, 3], [4, 5, 6]], y=[[0.5, -0.5], [1.5, -1.5]], seq=7, ts=TS),
            "features with f32 vector targets (ydim 2)")
valid_input("input_features_targets_labels", B(x=[[1, 2], [3, 4], [5, 6]], labels=[0, 9, 4], seq=100, ts=0),
            "features with u32 class targets")
valid_input("input_features_1step_target_value", B(x=[0.25], y=[2.0], seq=3, ts=5), "one step with one vector target (JSON 'x'/'y')")
valid_input("input_features_1step_target_label", B(x=[0.25, 0.75], labels=[3], seq=3, ts=5), "one step with one class target (JSON 'label')")
valid_input("input_tokens_3steps", B(tokens=[7, 0, 70000], seq=0, ts=TS), "three u32 token ids (one above 65535)")
valid_input("input_tokens_targets_labels", B(tokens=[1, 2, 3], labels=[2, 3, 4], seq=12, ts=0), "tokens with class targets")
valid_input("input_text_hello", B(text="hello", seq=9, ts=TS), "text, one step per byte")
valid_input("input_text_utf8", B(text="né→", seq=0, ts=0), "UTF-8 text: 6 bytes, 6 steps")
valid_input("input_text_targets_labels", B(text="abc", labels=[98, 99, 100], seq=0, ts=0), "text with class targets (next bytes)")
valid_input("input_flags_reset", B(x=[1.0, 2.0, 3.0], reset=True, seq=100, ts=0), "RESET with one step")
valid_input("input_flags_end", B(x=[1.0, 2.0, 3.0], end=True, seq=5, ts=0), "END with one step")
valid_input("input_flags_no_learn", B(x=[[1, 2, 3], [4, 5, 6]], no_learn=True, seq=2, ts=0), "NO_LEARN")
valid_input("input_flags_no_predict", B(tokens=[5], no_predict=True, seq=2, ts=0), "NO_PREDICT")
valid_input("input_flags_all", B(text="z", labels=[1], reset=True, end=True, no_learn=True, no_predict=True, seq=0, ts=-1),
            "all four flags, a negative timestamp")
valid_input("input_reset_0steps_features", B(reset=True, seq=0, ts=0, xdim=3), "zero-step RESET, features of 3 (JSON has no xdim: decodes as xdim 1)",
            json_form=False)
valid_input("input_reset_0steps", B(reset=True, seq=0, ts=0), "zero-step RESET (features, xdim 1)")
valid_input("input_end_0steps_text", B(end=True, seq=17, ts=TS, kind=wire.InputKind.TEXT), "zero-step END of a text stream", json_form=False)
valid_input("input_end_0steps", B(end=True, seq=17, ts=TS), "zero-step END (features, xdim 1)")
valid_input("input_features_large_seq", B(x=[[-0.0, 1e-30, 3.4028234e38]], seq=2 ** 64 - 1, ts=-(2 ** 63), no_learn=True),
            "largest seq, smallest timestamp, -0.0, a tiny and the largest finite f32 (binary only: JSON integers stop below 9.2e18)", json_form=False)
valid_input("input_features_wide", B(x=np.arange(40, dtype=np.float32).reshape(2, 20) / 8, seq=1, ts=0), "two steps of 20 features")

# JSON-only forms.
noseq = B(x=[[1, 2, 3]], seq=None, ts=0)
write("input_json_noseq.json", b'{"x": [1, 2, 3]}', {"direction": "input", "encoding": "json",
                                                      "note": "no seq: the daemon uses the stream's next expected seq; ts defaults to 0",
                                                      "fields": input_fields(noseq)})
assert wire.decode_input(b'{"x": [1, 2, 3]}') == noseq
spaced = B(x=[[1.5, 2.0], [3.0, 4.0]], seq=4, ts=0, reset=True)
data = b'{\n  "reset": true,\n  "xs": [[1.5, 2], [3e0, 4.0]],\n  "seq": 4.0,\n  "no_learn": false\n}'
assert wire.decode_input(data) == spaced
write("input_json_whitespace_order.json", data, {"direction": "input", "encoding": "json",
                                                "note": "any key order and whitespace; integers written as 4.0 and numbers as 3e0; false flags",
                                                "fields": input_fields(spaced)})
escaped = B(text="é\n\"", seq=1, ts=0)
data = b'{"seq": 1, "text": "\\u00e9\\n\\""}'
assert wire.decode_input(data) == escaped
write("input_json_text_escapes.json", data, {"direction": "input", "encoding": "json", "note": "JSON string escapes in text",
                                             "fields": input_fields(escaped)})

# ------------------------------------------------------------------ invalid inputs
good = wire.encode_input(B(x=[[1, 2, 3]], y=[[0.5, 0.25]], seq=0, ts=0))


def mutate(edit):
    b = bytearray(good)
    edit(b)
    return bytes(b)


invalid("invalid_input_short.bin", "input", good[:20], "shorter than the 32-byte header")
invalid("invalid_input_magic.bin", "input", mutate(lambda b: b.__setitem__(0, 0x41)), "byte 0 is not 'R'")
invalid("invalid_input_version.bin", "input", mutate(lambda b: b.__setitem__(1, 2)), "version 2")
invalid("invalid_input_input_kind.bin", "input", mutate(lambda b: b.__setitem__(2, 4)), "input kind 4")
invalid("invalid_input_target_kind.bin", "input", mutate(lambda b: b.__setitem__(3, 3)), "target kind 3")
invalid("invalid_input_flags.bin", "input", mutate(lambda b: b.__setitem__(4, 0x10)), "unknown flag bit 4")
invalid("invalid_input_xdim.bin", "input", mutate(lambda b: b.__setitem__(6, 0)), "xdim 0 for features")
invalid("invalid_input_xdim_text.bin", "input", wire.encode_input(B(text="ab", seq=0))[:6] + b"\x02\x00" + wire.encode_input(B(text="ab", seq=0))[8:],
        "xdim 2 for text")
invalid("invalid_input_ydim.bin", "input", mutate(lambda b: b.__setitem__(8, 0)), "ydim 0 for vector targets")
invalid("invalid_input_reserved.bin", "input", mutate(lambda b: b.__setitem__(10, 1)), "reserved field not 0")
invalid("invalid_input_empty.bin", "input", wire.encode_input(B(x=[[1.0]], seq=0))[:12] + b"\0\0\0\0" + wire.encode_input(B(x=[[1.0]], seq=0))[16:32],
        "zero steps without RESET or END")
invalid("invalid_input_length_short.bin", "input", good[:-4], "body 4 bytes short")
invalid("invalid_input_length_long.bin", "input", good + b"\0\0\0\0", "body 4 bytes long")
invalid("invalid_input_non_finite_input.bin", "input", mutate(lambda b: b.__setitem__(slice(36, 40), struct.pack("<f", math.nan))),
        "NaN in the second input value (byte 36)")
invalid("invalid_input_non_finite_target.bin", "input", mutate(lambda b: b.__setitem__(slice(48, 52), struct.pack("<f", math.inf))),
        "+inf in the second target value (byte 48)")
invalid("invalid_input_json_syntax.json", "input", b'{"x": [1, 2, ', "not JSON")
invalid("invalid_input_json_not_object.json", "input", b'{"x": [1]} trailing', "JSON with trailing garbage")
invalid("invalid_input_json_unknown_field.json", "input", b'{"x": [1, 2, 3], "bogus": 1}', "unknown field")
invalid("invalid_input_json_two_inputs.json", "input", b'{"x": [1], "text": "a"}', "two input fields")
invalid("invalid_input_json_empty.json", "input", b'{"seq": 3}', "no steps and neither reset nor end")
invalid("invalid_input_json_ragged.json", "input", b'{"xs": [[1, 2], [3]]}', "rows of different widths (xdim)")
invalid("invalid_input_json_target_count.json", "input", b'{"xs": [[1], [2]], "labels": [1]}', "one label for two steps")
invalid("invalid_input_json_overflow.json", "input", b'{"x": [1e39]}', "1e39 is not a finite float32")
invalid("invalid_input_json_token_range.json", "input", b'{"tokens": [4294967296]}', "token id above u32")
invalid("invalid_input_json_flag_type.json", "input", b'{"x": [1], "reset": 1}', "a flag that is not a boolean")
invalid("invalid_input_json_nan.json", "input", b'{"x": [NaN]}', "NaN is not JSON")

# ------------------------------------------------------------------ outputs
NAN = math.nan
O = OutputMessage.build
valid_output("output_vector_1step", O([[0.5, -1.25, 3.0]], [NAN], seq=0, ts=0, model_version=0, new_state=True),
             "first prediction of a new stream: loss NaN, NEW_STATE")
valid_output("output_vector_3steps", O([[1, 2], [3, 4], [0.1, -0.2]], [0.25, NAN, 1.5], seq=41, ts=TS, model_version=7),
             "three steps, odim 2, a NaN loss in the middle")
valid_output("output_vector_gap", O([[1.0]], [0.125], seq=105, ts=TS, model_version=3, gap=True), "GAP")
valid_output("output_vector_reset_gap", O([[1.0, 2.0]], [NAN], seq=10, ts=0, model_version=2 ** 32 - 1, new_state=True, gap=True),
             "NEW_STATE and GAP (policy reset), largest model version")
valid_output("output_topk", O([[0.5, 0.25, 0.125], [0.9, 0.05, 0.01]], [NAN, 2.5], ids=[[101, 32, 7], [0, 255, 65535]], seq=0, ts=TS,
                               model_version=12), "top-3 of two steps, most probable first")
valid_output("output_vector_anomaly", O([[1.5], [2.5]], [0.5, 0.75], anomaly=[0.125, 1.0], seq=3, ts=TS, model_version=1),
             "ANOMALY: n scores follow the n losses")
valid_output("output_vector_anomaly_nan", O([[1.5, 0.0]], [NAN], anomaly=[NAN], seq=0, ts=0, model_version=0, new_state=True),
             "ANOMALY with NaN where there was no prediction before")
valid_output("output_vector_more", O([[1.0], [2.0]], [0.25, 0.5], seq=0, ts=TS, model_version=4, more=True),
             "MORE: more outputs for the same input message follow")
valid_output("output_anomaly_more", O([[1.0, -1.0], [2.0, -2.0]], [NAN, 0.5], anomaly=[NAN, 0.875], seq=64, ts=TS, model_version=4,
                                      new_state=True, more=True), "ANOMALY and MORE (and NEW_STATE)")
valid_output("output_topk_anomaly_more", O([[0.75, 0.25]], [1.25], ids=[[3, 4]], anomaly=[0.5], seq=8, ts=0, model_version=9, more=True),
             "top-k with ANOMALY and MORE")
valid_output("output_vector_large_seq", O([[3.4028234e38, -0.0, 1e-30]], [0.0], seq=2 ** 64 - 1, ts=-(2 ** 63), model_version=0),
             "largest seq, smallest ts, extreme floats")

good_out = wire.encode_output(O([[1.0, 2.0]], [0.5], seq=0, ts=0))


def mutate_out(edit):
    b = bytearray(good_out)
    edit(b)
    return bytes(b)


invalid("invalid_output_short.bin", "output", good_out[:31], "shorter than the header")
invalid("invalid_output_magic.bin", "output", mutate_out(lambda b: b.__setitem__(0, 0x52)), "byte 0 is 'R' (an input payload)")
invalid("invalid_output_version.bin", "output", mutate_out(lambda b: b.__setitem__(1, 3)), "version 3")
invalid("invalid_output_kind.bin", "output", mutate_out(lambda b: b.__setitem__(2, 3)), "output kind 3")
invalid("invalid_output_flags.bin", "output", mutate_out(lambda b: b.__setitem__(3, 0x10)), "unknown flag bit 4")
invalid("invalid_output_reserved.bin", "output", mutate_out(lambda b: b.__setitem__(6, 1)), "reserved field not 0")
invalid("invalid_output_length.bin", "output", good_out + b"\0\0", "2 extra bytes")
invalid("invalid_output_anomaly_missing.bin", "output", mutate_out(lambda b: b.__setitem__(3, int(OutputFlags.ANOMALY))),
        "ANOMALY set but no scores after the losses")
invalid("invalid_output_json_no_loss.json", "output", b'{"seq":0,"ts":0,"version":0,"new":false,"gap":false,"y":[[1]]}', "no 'loss'")
invalid("invalid_output_json_rows.json", "output", b'{"seq":0,"ts":0,"version":0,"y":[[1],[2]],"loss":[null]}', "two rows, one loss")

files.sort(key=lambda e: e["file"])
manifest = {
    "description": "Golden payloads of recurd wire protocol v1 (DESIGN §4, docs/PROTOCOL.md), made by generate.py with Clients/python/src/recurd/wire.py",
    "conventions": {
        "floats": "exact in float32 or written with 9 significant digits (exact for float32); null in a float list is NaN",
        "seq": "null: a JSON input without seq (the daemon uses the stream's next expected seq)",
        "input_kind": "1 features (x: steps × xdim), 2 tokens (tokens: ids), 3 text (tokens: the bytes; text: them as UTF-8)",
        "target_kind": "0 none, 1 f32 vector (y: steps × ydim), 2 u32 class (labels)",
        "input_flags": "RESET 1, END 2, NO_LEARN 4, NO_PREDICT 8",
        "output_kind": "1 vector (values: steps × odim), 2 top_k (ids and values: steps × k, most probable first)",
        "output_flags": "NEW_STATE 1, GAP 2, ANOMALY 4 (anomaly: n scores after the n losses; JSON \"anomaly\"), MORE 8 (JSON \"more\": true)",
        "json_output": "byte for byte as the daemon writes it: keys seq, ts, version, new, gap, y|top, loss, then anomaly when scored and more when set; %.9g numbers, null for NaN",
        "error": "invalid payloads: the daemon's rejection reason (recurd_rejected_messages_total{reason}) and the offending byte offset (null for a well-formed JSON object with a wrong field)",
    },
    "files": files,
}
with open(os.path.join(HERE, "manifest.json"), "w") as fh:
    json.dump(manifest, fh, indent=1, ensure_ascii=False)
    fh.write("\n")
print(f"wrote {len(files)} payloads and manifest.json")
