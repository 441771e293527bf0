"""ONNX heads on a multi-layer LSTM/GRU's final state, and sequence_lens, with numpy alone.

`torch.onnx.export` (TorchScript exporter, opsets 11–17) writes `fc(h_n[-1])` of an
`nn.LSTM/nn.GRU(num_layers=2)` as a Concat of the layers' Y_h (h_n) followed by a Gather of index
-1 (or num_layers-1, as written), or a Slice for `h_n[-1:]`. The converter maps the last layer's
entry onto recurd's head (a many-to-one model: the prediction at step t is the model's output for
the prefix up to t) and refuses, saying what it reads, a head on a lower layer's state, on all of
h_n or on the cell states c_n. The graphs are committed under Tests/Fixtures/export (cases
onnx_lstm2_hn, onnx_gru2_hn and the folder onnx_states/, made by generate.py); the step-wise
outputs of the cases against onnxruntime's are checked by test_export.py's parametrized tests.
"""
import os

import numpy as np
import pytest

from conftest import EXPORT, load_manifest
from recurd.export import ExportError, convert
from recurd.modelfile import Model

MANIFEST = load_manifest(os.path.join(EXPORT, "manifest.json"))
STATES = os.path.join(EXPORT, "onnx_states")


def refused(name):
    with pytest.raises(ExportError) as e:
        convert(os.path.join(STATES, name), "onnx")
    return str(e.value)


def same_tensors(conv, case):
    committed = Model.load(os.path.join(EXPORT, case, "model.safetensors"))
    ours, theirs = conv.model.tensors(), committed.tensors()
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    assert conv.model.head == committed.head


def test_the_fixtures_are_in_the_manifest():
    cases = {c["name"] for c in MANIFEST["cases"]}
    assert {"onnx_lstm2_hn", "onnx_gru2_hn"} <= cases
    assert len(MANIFEST["variants"]) >= 4
    files = {e["file"] for e in MANIFEST["refuse"]} | {v["file"] for v in MANIFEST["variants"]}
    committed = {f"onnx_states/{f}" for f in os.listdir(STATES)}
    assert committed == {f for f in files if f.startswith("onnx_states/")}


@pytest.mark.parametrize("name,cell,layers", [("onnx_lstm2_hn", "lstm", "/rnn/LSTM_1"), ("onnx_gru2_hn", "gru", "/rnn/GRU_1")])
def test_a_head_on_h_n_last_converts_as_a_many_to_one_model(name, cell, layers):
    conv = convert(os.path.join(EXPORT, name, "source.onnx"), "onnx")
    same_tensors(conv, name)
    assert conv.model.cell == cell and conv.model.hidden == [8, 8]
    note = next(n for n in conv.notes if "h_n[-1]" in n)
    assert "Concat node '/rnn/Concat_1'" in note and f"the Y_h of {cell.upper()} node '{layers}'" in note
    assert "many-to-one" in note and "prefix up to t" in note


@pytest.mark.parametrize("v", MANIFEST["variants"], ids=lambda v: v["name"])
def test_variants_convert_to_their_case_model(v):
    """h_n[-1:] (a Slice, opset 14), h_n[num_layers-1] (opset 14), a graph input sequence_lens,
    and a constant sequence_lens equal to a fixed sequence length: the same model as the case's."""
    conv = convert(os.path.join(EXPORT, v["file"]), "onnx")
    same_tensors(conv, v["same_model_as"])
    for w in v["note_words"]:
        assert any(w in n for n in conv.notes), (w, conv.notes)


@pytest.mark.parametrize("file,cell,opset", [("lstm2_hn0.onnx", "LSTM", 17), ("gru2_hn0_opset11.onnx", "GRU", 11)])
def test_a_head_on_a_lower_layers_state_is_refused_as_such(file, cell, opset):
    msg = refused(file)
    assert msg.startswith("Gather node '/Gather' takes h_n[0]: the final state of "
                          f"{cell} node '/rnn/{cell}' (layer 0 of layers 0–1)")
    assert f"stacked by Concat node '/rnn/Concat_1'" in msg
    assert f"recurd's head reads the last layer's final state (h_n[-1], the Y_h of {cell} node '/rnn/{cell}_1')" in msg
    # the old message blamed the Concat for lying between the layers
    assert "lies between" not in msg


def test_a_head_on_all_of_h_n_is_refused():
    msg = refused("gru2_hn_all.onnx")
    assert msg.startswith("the head MatMul node '/fc/MatMul' reads all of h_n (the final hidden states of 2 layers")
    assert "not one layer's" in msg and "(h_n[-1])" in msg and "lies between" not in msg


def test_a_head_on_the_cell_states_is_refused():
    msg = refused("lstm2_cn_last.onnx")
    assert msg.startswith("Gather node '/Gather' reads c_n (the final cell states of 2 layers")
    assert "recurd's head reads the last layer's hidden state" in msg


def test_a_graph_input_sequence_lens_is_ignored_with_a_note():
    conv = convert(os.path.join(STATES, "lstm2_hn_sequence_lens_input.onnx"), "onnx")
    same_tensors(conv, "onnx_lstm2_hn")
    notes = [n for n in conv.notes if "sequence_lens" in n]
    assert [n.split(":")[0] for n in notes] == ["LSTM node '/rnn/LSTM'", "LSTM node '/rnn/LSTM_1'"]
    assert all("graph input 'sequence_lens'; ignored" in n and "steps every input" in n for n in notes)


def test_a_constant_sequence_lens_that_cuts_sequences_short_is_refused_by_name():
    msg = refused("lstm2_sequence_lens_const.onnx")
    assert msg.startswith("LSTM node '/rnn/LSTM': sequence_lens is the constant 'seq_len_3' = [3]")
    assert "stops every sequence after 3 steps" in msg and "export without sequence_lens" in msg
    msg = refused("lstm2_fixed5_sequence_lens4.onnx")
    assert msg.startswith("LSTM node '/rnn/LSTM': sequence_lens is the constant 'seq_len_4' = [4]")
    assert "shorter than the graph's fixed sequence length 5" in msg
    # equal to the fixed length: nothing is cut, ignored with a note
    conv = convert(os.path.join(STATES, "lstm2_hn_fixed5_sequence_lens5.onnx"), "onnx")
    same_tensors(conv, "onnx_lstm2_hn")
    assert any("'seq_len_5' = [5], the graph's fixed sequence length; ignored" in n for n in conv.notes)


def test_the_case_files_say_what_they_expect():
    """expected[t] of a many-to-one case is the framework's output for the prefix up to t: one row
    per step, as recurd publishes them."""
    import json
    for name in ("onnx_lstm2_hn", "onnx_gru2_hn"):
        with open(os.path.join(EXPORT, name, "case.json")) as fh:
            c = json.load(fh)
        assert len(c["expected"]) == c["steps"] == len(c["input"]) == 10
        assert any("many-to-one" in n for n in c["notes"])
