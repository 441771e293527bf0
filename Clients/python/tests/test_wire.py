"""recurd.wire: round trips, the golden payloads of Tests/Fixtures/wire, and every check."""
import math
import os
import struct

import numpy as np
import pytest

from conftest import WIRE, load_manifest
from recurd import wire
from recurd.wire import InputFlags, InputKind, InputMessage, OutputFlags, OutputMessage, TargetKind, WireError

MANIFEST = load_manifest(os.path.join(WIRE, "manifest.json"))
VALID = [e for e in MANIFEST["files"] if "fields" in e]
INVALID = [e for e in MANIFEST["files"] if "error" in e]


def read(name):
    with open(os.path.join(WIRE, name), "rb") as fh:
        return fh.read()


def floats(rows):
    return np.array([[math.nan if v is None else v for v in r] for r in rows], np.float32)


def flat(values):
    return np.array([math.nan if v is None else v for v in values], np.float32)


def test_manifest_covers_every_kind_and_flag():
    inputs = [e["fields"] for e in VALID if e["direction"] == "input"]
    outputs = [e["fields"] for e in VALID if e["direction"] == "output"]
    assert {f["input_kind"] for f in inputs} == {1, 2, 3}
    assert {f["target_kind"] for f in inputs} == {0, 1, 2}
    assert set().union(*(f["flag_names"] for f in inputs)) == {"RESET", "END", "NO_LEARN", "NO_PREDICT"}
    assert any(f["steps"] == 0 and "RESET" in f["flag_names"] for f in inputs)
    assert any(f["steps"] == 0 and "END" in f["flag_names"] for f in inputs)
    assert {f["output_kind"] for f in outputs} == {1, 2}
    assert set().union(*(f["flag_names"] for f in outputs)) == {"NEW_STATE", "GAP", "ANOMALY", "MORE"}
    for kind in (1, 2):
        for combo in ((False, False), (True, True)):
            assert any(f["output_kind"] == kind and (f["anomaly"] is not None, f["more"]) == combo for f in outputs), (kind, combo)
    assert {e["encoding"] for e in VALID} == {"binary", "json"}
    every_file = {e["file"] for e in MANIFEST["files"]}
    on_disk = {f for f in os.listdir(WIRE) if f not in ("manifest.json", "generate.py", "README.md")}
    assert every_file == on_disk


@pytest.mark.parametrize("entry", [e for e in VALID if e["direction"] == "input"], ids=lambda e: e["file"])
def test_golden_input_decodes_to_manifest(entry):
    data = read(entry["file"])
    assert len(data) == entry["size"]
    m = wire.decode_input(data)
    f = entry["fields"]
    assert int(m.kind) == f["input_kind"] and int(m.target_kind) == f["target_kind"]
    assert int(m.flags) == f["flags"] and [x.name for x in InputFlags if m.flags & x] == f["flag_names"]
    assert (m.xdim, m.ydim, m.steps, m.seq, m.ts) == (f["xdim"], f["ydim"], f["steps"], f["seq"], f["ts"])
    if f["x"] is not None:
        assert m.features.shape == (f["steps"], f["xdim"])
        np.testing.assert_array_equal(m.features, floats(f["x"]).reshape(f["steps"], f["xdim"]))
    if f["tokens"] is not None:
        assert m.tokens.tolist() == f["tokens"]
    if f["text"] is not None:
        assert m.text == f["text"].encode("utf-8")
    if f["y"] is not None:
        np.testing.assert_array_equal(m.y, floats(f["y"]))
    else:
        assert m.y is None
    assert (m.labels.tolist() if m.labels is not None else None) == f["labels"]


@pytest.mark.parametrize("entry", [e for e in VALID if e["direction"] == "input" and not e["file"].startswith("input_json_")],
                         ids=lambda e: e["file"])
def test_golden_input_is_what_the_encoder_writes(entry):
    data = read(entry["file"])
    m = wire.decode_input(data)
    again = wire.encode_input_json(m) if entry["encoding"] == "json" else wire.encode_input(m)
    assert again == data


@pytest.mark.parametrize("entry", [e for e in VALID if e["direction"] == "output"], ids=lambda e: e["file"])
def test_golden_output_decodes_and_reencodes(entry):
    data = read(entry["file"])
    m = wire.decode_output(data)
    f = entry["fields"]
    assert int(m.kind) == f["output_kind"] and int(m.flags) == f["flags"]
    assert [x.name for x in OutputFlags if m.flags & x] == f["flag_names"]
    assert (m.odim, m.steps, m.model_version, m.seq, m.ts, m.more) == (f["odim"], f["steps"], f["model_version"], f["seq"], f["ts"], f["more"])
    np.testing.assert_array_equal(m.values, floats(f["values"]).reshape(f["steps"], f["odim"]))
    assert (m.ids.tolist() if m.ids is not None else None) == f["ids"]
    np.testing.assert_array_equal(m.losses, flat(f["losses"]))
    if f["anomaly"] is None:
        assert m.anomaly is None
    else:
        np.testing.assert_array_equal(m.anomaly, flat(f["anomaly"]))
    again = wire.encode_output_json(m) if entry["encoding"] == "json" else wire.encode_output(m)
    assert again == data


@pytest.mark.parametrize("entry", INVALID, ids=lambda e: e["file"])
def test_golden_invalid_payloads_are_refused_with_reason_and_offset(entry):
    data = read(entry["file"])
    decode = wire.decode_input if entry["direction"] == "input" else wire.decode_output
    with pytest.raises(WireError) as err:
        decode(data)
    assert isinstance(err.value, ValueError)
    assert err.value.reason == entry["error"]["reason"]
    assert err.value.offset == entry["error"]["offset"]
    assert str(err.value) == entry["error"]["message"]
    if err.value.offset is not None and entry["encoding"] == "binary" and err.value.reason not in ("short",):
        assert "byte" in str(err.value)


def test_binary_header_layout_by_hand():
    """The layout of DESIGN §4, checked with struct rather than the encoder."""
    data = read("input_features_targets_values.bin")
    magic, ver, kind, tkind, flags, xdim, ydim, res, n, seq, ts = struct.unpack_from("<BBBBHHHHIQq", data)
    assert (magic, ver, kind, tkind, flags, xdim, ydim, res, n, seq) == (0x52, 1, 1, 1, 0, 3, 2, 0, 2, 7)
    assert struct.unpack_from("<6f", data, 32) == (1, 2, 3, 4, 5, 6)
    assert struct.unpack_from("<4f", data, 56) == (0.5, -0.5, 1.5, -1.5)
    assert len(data) == 32 + 24 + 16
    out = read("output_anomaly_more.bin")
    magic, ver, kind, flags, odim, res, n, mver, seq, ts = struct.unpack_from("<BBBBHHIIQq", out)
    assert (magic, ver, kind, flags, odim, res, n, mver, seq) == (0x50, 1, 1, 0b1101, 2, 0, 2, 4, 64)
    assert struct.unpack_from("<4f", out, 32) == (1, -1, 2, -2)
    losses = struct.unpack_from("<2f", out, 48)
    anomaly = struct.unpack_from("<2f", out, 56)
    assert math.isnan(losses[0]) and losses[1] == 0.5 and math.isnan(anomaly[0]) and anomaly[1] == 0.875
    top = read("output_topk.bin")
    assert struct.unpack_from("<IfIfIf", top, 32) == (101, 0.5, 32, 0.25, 7, 0.125)


@pytest.mark.parametrize("m", [
    InputMessage.build(x=[[1, 2, 3], [4, 5, 6]], y=[[1], [2]], seq=5, ts=9, no_learn=True),
    InputMessage.build(tokens=[1, 2, 2 ** 32 - 1], labels=[0, 1, 2], seq=0, ts=-5, reset=True),
    InputMessage.build(text="héllo", seq=2 ** 64 - 1, ts=0, end=True, no_predict=True),
    InputMessage.build(reset=True, seq=0, xdim=7),
    InputMessage.build(end=True, seq=3, kind=InputKind.TOKENS),
], ids=["features", "tokens", "text", "reset0", "end0"])
def test_input_binary_round_trip(m):
    assert wire.decode_input(wire.encode_input(m)) == m


def test_input_json_round_trip_and_forms():
    m = InputMessage.build(x=[0.1, 0.2], y=[3.5], seq=1, ts=2, reset=True)
    data = wire.encode_input_json(m)
    assert data == b'{"seq":1,"ts":2,"x":[0.100000001,0.200000003],"y":[3.5],"reset":true}'
    assert wire.decode_input(data) == m
    m2 = InputMessage.build(x=[[1, 2], [3, 4]], labels=[0, 1], seq=None, ts=0)
    assert wire.encode_input_json(m2) == b'{"ts":0,"xs":[[1,2],[3,4]],"labels":[0,1]}'
    assert wire.decode_input(wire.encode_input_json(m2)) == m2
    with pytest.raises(ValueError, match="binary form"):
        wire.encode_input_json(InputMessage.build(x=[1.0], seq=2 ** 64 - 1))
    assert InputMessage.build(x=2.5).features.tolist() == [[2.5]]
    assert InputMessage.build(tokens=b"ab").tokens.tolist() == [97, 98]
    with pytest.raises(ValueError, match="UTF-8"):
        wire.encode_input_json(InputMessage.build(text=b"\xff", seq=0))
    # A negative seq is refused as the binary encoder refuses it (the daemon would count it as json).
    with pytest.raises(ValueError, match="negative"):
        wire.encode_input_json(InputMessage.build(x=[1.0], seq=-1))
    with pytest.raises(ValueError, match="u64"):
        wire.encode_input(InputMessage.build(x=[1.0], seq=-1))


def test_output_round_trips():
    m = OutputMessage.build([[0.5, 0.25]], [math.nan], ids=[[3, 1]], anomaly=[0.5], seq=7, ts=1, model_version=3, new_state=True, more=True)
    assert wire.decode_output(wire.encode_output(m)) == m
    assert wire.decode_output(wire.encode_output_json(m)) == m
    assert m.more and m.new_state and not m.gap
    j = wire.encode_output_json(OutputMessage.build([[1.0]], [math.nan], seq=0))
    assert j == b'{"seq":0,"ts":0,"version":0,"new":false,"gap":false,"y":[[1]],"loss":[null]}'


def test_every_truncation_and_extension_is_refused():
    for name in ("input_features_targets_values.bin", "input_tokens_targets_labels.bin", "input_text_hello.bin"):
        data = read(name)
        for cut in range(len(data)):
            with pytest.raises(WireError) as e:
                wire.decode_input(data[:cut])
            if cut >= 32:
                assert e.value.reason == "length"
            elif cut > 0:
                assert e.value.reason == "short"
        for extra in range(1, 10):
            with pytest.raises(WireError, match="length"):
                wire.decode_input(data + bytes(extra))
    data = read("output_topk_anomaly_more.bin")
    for cut in range(len(data)):
        with pytest.raises(WireError):
            wire.decode_output(data[:cut])


def test_random_bytes_never_crash():
    rng = np.random.default_rng(1)
    for i in range(3000):
        n = int(rng.integers(0, 80))
        b = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        if n and i % 3 == 0:
            b[0] = 0x52
        if n > 1 and i % 3 == 0:
            b[1] = 1
        for decode in (wire.decode_input, wire.decode_output):
            try:
                decode(bytes(b))
            except WireError:
                pass


def test_builder_checks_shapes():
    with pytest.raises(ValueError, match="one of x, tokens, text"):
        InputMessage.build(x=[1], text="a")
    with pytest.raises(ValueError, match="2 targets for 1 step"):
        InputMessage.build(x=[1, 2], y=[[1], [2]])
    with pytest.raises(ValueError, match="0…4294967295"):
        InputMessage.build(tokens=[-1])
    with pytest.raises(WireError, match="non_finite"):
        wire.encode_input(InputMessage.build(x=[1.0, float("nan")]))
    m = InputMessage.build(x=np.zeros((4, 2)), seq=0)
    assert (m.steps, m.xdim, m.kind) == (4, 2, InputKind.FEATURES)
    assert InputMessage.build(text="ab").tokens.tolist() == [97, 98]
    assert InputMessage.build(tokens=5).steps == 1
    assert InputMessage.build(x=[1.0], labels=3).target_kind == TargetKind.CLASSES


def test_json_decoder_matches_swift_rules():
    assert wire.decode_input(b'{"seq": 7.0, "x": [1]}').seq == 7
    with pytest.raises(WireError, match="'seq' must be a non-negative integer"):
        wire.decode_input(b'{"seq": -1, "x": [1]}')
    with pytest.raises(WireError, match="'seq' must be a non-negative integer"):
        wire.decode_input(b'{"seq": 1.5, "x": [1]}')
    with pytest.raises(WireError, match="'x' step 0 element 1 is not a number"):
        wire.decode_input(b'{"x": [1, true]}')
    with pytest.raises(WireError, match="xdim"):
        wire.decode_input(b'{"x": []}')
    with pytest.raises(WireError, match="give one of y, ys, label, labels"):
        wire.decode_input(b'{"x": [1], "y": [1], "label": 1}')
    m = wire.decode_input(b'{"end": true}')
    assert (m.steps, m.xdim, int(m.flags)) == (0, 1, int(InputFlags.END))


def test_zero_step_reset_or_end_fits_any_dims_as_in_swift():
    # RESET, features, xdim 0, no steps: accepted (its dims say nothing); without RESET/END: empty first.
    header = struct.pack("<BBBBHHHHIQq", 0x52, 1, 1, 0, int(InputFlags.RESET), 0, 0, 0, 0, 0, 0)
    m = wire.decode_input(header)
    assert (m.steps, int(m.flags)) == (0, int(InputFlags.RESET))
    with pytest.raises(WireError, match="zero steps") as e:
        wire.decode_input(struct.pack("<BBBBHHHHIQq", 0x52, 1, 1, 0, 0, 0, 0, 5, 0, 0, 0))
    assert e.value.reason == "empty"


def test_json_field_given_twice_is_refused_as_in_swift():
    with pytest.raises(WireError, match="field 'x' given twice"):
        wire.decode_input(b'{"x": [1], "x": [2]}')

