"""Publisher, Subscriber and Control against the real daemon (`recurd serve` on ipc endpoints):
every message type — features, tokens, text, targets, RESET, END, NO_LEARN, NO_PREDICT, JSON and
binary, top-k — with predictions checked against recurd.reference on the same model file."""
import math
import os
import time

import numpy as np
import pytest
import zmq

from conftest import RECURD_BIN, WIRE, load_manifest, needs_daemon
from recurd import Subscriber, reference, wire
from recurd.modelfile import Model
from recurd.wire import OutputFlags

pytestmark = needs_daemon
TOL = 2e-5
QUIET = ["--no-learn", "--no-normalize", "--no-combine"]   # the network alone: what the references compute


def rows(n, width=3, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (n, width)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_features_one_and_many_steps_match_reference(daemon_factory, models, fmt):
    d = daemon_factory(model=models["lstm_features"], args=QUIET + ["--max-batch", "16"], publisher_format=fmt)
    m = Model.load(models["lstm_features"])
    streams = {f"s{i}": rows(20, seed=i) for i in range(4)}
    expected = {k: reference.run(m, x) for k, x in streams.items()}
    got = {k: [] for k in streams}
    messages = 0
    for k, x in streams.items():
        t = 0
        for n in (1, 3, 1, 5, 10):
            first = d.pub.send(k, x[t:t + n] if n > 1 else x[t])
            assert first == t
            t += n
            messages += 1
    for p in d.recv_n(messages):
        assert p.seq == len(got[p.key]), "outputs in order, seq = first step"
        assert p.new_state == (p.seq == 0)
        assert p.top is None and p.anomaly is None and not p.more and p.model_version == 0
        assert p.y.shape == (p.steps, 3) and p.loss.shape == (p.steps,)
        got[p.key].extend(p.y)
    for k in streams:
        assert np.max(np.abs(np.array(got[k]) - expected[k])) < TOL
    assert d.ctl.stats()["rejected_total"] == 0


def test_progressive_loss_with_next_step_targets(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    m = Model.load(models["lstm_features"])
    x = rows(6, seed=3)
    ref = reference.run(m, x)
    d.pub.send("n", x)
    p = d.recv()
    assert math.isnan(p.loss[0])
    want = [np.mean((ref[t - 1] - x[t]) ** 2) for t in range(1, 6)]
    assert np.allclose(p.loss[1:], want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_tokens_with_class_targets(daemon_factory, models, fmt):
    d = daemon_factory(model=models["lstm_tokens"], args=QUIET + ["--targets", "explicit"], probe=("tokens", 1), publisher_format=fmt)
    m = Model.load(models["lstm_tokens"])
    toks = [0, 299, 17, 150, 3, 42]
    labels = [1, 6, 0, 3, 2, 5]
    ref = reference.run(m, toks)
    assert d.pub.send("t", tokens=toks[:2], labels=labels[:2]) == 0
    assert d.pub.send("t", tokens=toks[2], labels=labels[2]) == 2
    assert d.pub.send("t", tokens=toks[3:], labels=labels[3:]) == 3
    got = d.recv_n(3)
    y = np.vstack([p.y for p in got])
    loss = np.concatenate([p.loss for p in got])
    assert np.max(np.abs(y - ref)) < TOL
    # explicit targets score the step's own prediction: cross-entropy in nats
    assert np.allclose(loss, [-math.log(ref[t][labels[t]]) for t in range(6)], rtol=1e-4)


def test_text_json_and_binary_with_top_k(daemon_factory, models):
    # The network's own distribution (no context model), which the numpy reference computes.
    d = daemon_factory(model=models["gru_text"], args=QUIET + ["--top-k", "3", "--text-context-bytes", "0"], probe=("text", 1))
    m = Model.load(models["gru_text"])
    text = "To be, or not to be, that is the question. — Hamlet"
    data = text.encode("utf-8")
    ref = reference.run(m, data)
    assert d.pub.send("play", text=data[:10]) == 0
    assert d.pub.send("play", text=data[10:20].decode("utf-8"), format="json") == 10
    assert d.pub.send("play", text=data[20:]) == 20
    got = d.recv_n(3)
    assert [p.seq for p in got] == [0, 10, 20]
    step = 0
    for p in got:
        assert p.top is not None and p.top.shape == (p.steps, 3) and p.y.shape == (p.steps, 3)
        for s in range(p.steps):
            order = np.argsort(-ref[step])[:3]
            assert p.top[s, 0] == order[0]
            assert abs(p.y[s, 0] - ref[step][order[0]]) < TOL
            assert p.y[s, 0] >= p.y[s, 1] >= p.y[s, 2]
            if step:
                assert abs(p.loss[s] - (-math.log(ref[step - 1][data[step]]))) < 1e-4
            else:
                assert math.isnan(p.loss[s])
            step += 1
        assert p.top_pairs(0)[0][0] == int(p.top[0, 0])
    assert step == len(data)


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_explicit_vector_targets_and_sigmoid(daemon_factory, models, fmt):
    d = daemon_factory(model=models["gru_features_sigmoid"], args=QUIET + ["--targets", "explicit"], publisher_format=fmt)
    m = Model.load(models["gru_features_sigmoid"])
    x = rows(4, seed=5)
    y = np.array([[0, 1], [1, 1], [0.5, 0], [1, 0]], np.float32)
    ref = reference.run(m, x)
    d.pub.send("v", x[:3], y=y[:3])
    d.pub.send("v", x[3], y=y[3])  # one step: JSON "x"/"y"
    got = d.recv_n(2)
    p = got[0]
    p.y, p.loss = np.vstack([g.y for g in got]), np.concatenate([g.loss for g in got])
    assert np.max(np.abs(p.y - ref)) < TOL
    bce = -(y * np.log(ref) + (1 - y) * np.log(1 - ref)).mean(axis=1)
    assert np.allclose(p.loss, bce, rtol=1e-4)


def test_reset_with_steps_and_zero_step_reset(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    m = Model.load(models["lstm_features"])
    x = rows(10, seed=7)
    d.pub.send("r", x[:4])
    d.recv()
    # RESET with a step: numbering restarts at 0, the state is fresh.
    assert d.pub.send("r", x[4:6], reset=True) == 0
    p = d.recv()
    assert p.seq == 0 and p.new_state
    assert np.max(np.abs(p.y - reference.run(m, x[4:6]))) < TOL
    # A zero-step RESET (binary; the publisher sends the stream's kind and width), then a step.
    assert d.pub.send("r", reset=True) == 0
    d.nothing()
    assert d.pub.send("r", x[6]) == 0
    p = d.recv()
    assert p.seq == 0
    assert np.max(np.abs(p.y - reference.run(m, x[6:7]))) < TOL
    assert d.ctl.stats()["rejected_total"] == 0


def test_zero_step_reset_flags_the_next_output(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    x = rows(3, seed=16)
    d.pub.send("f", x[:2])
    d.recv()
    d.pub.send("f", reset=True)
    d.pub.send("f", x[2])
    assert d.recv(3).new_state


def test_zero_step_json_reset(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET, publisher_format="json")
    x = rows(3, seed=8)
    d.pub.send("j", x[:2])
    d.recv()
    d.pub.send("j", reset=True)
    d.pub.send("j", x[2])
    p = d.recv(3)
    assert d.ctl.stats()["rejected_total"] == 0
    assert p.new_state


def test_end_forgets_the_stream(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    x = rows(5, seed=9)
    d.pub.send("e", x[:2])
    d.recv()
    assert d.ctl.stream("e")["ok"]
    assert d.pub.send("e", x[2], end=True) == 2
    d.recv()
    assert not d.ctl.stream("e")["ok"]
    assert d.pub.send("e", x[3]) == 0  # a new stream
    assert d.recv().new_state
    assert d.pub.send("e", end=True) == 1  # zero-step END
    deadline = time.monotonic() + 10
    while d.ctl.stream("e")["ok"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not d.ctl.stream("e")["ok"]
    assert d.ctl.stats()["rejected_total"] == 0


def test_no_predict_and_duplicates_and_gaps(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    m = Model.load(models["lstm_features"])
    x = rows(8, seed=10)
    ref = reference.run(m, x)
    d.pub.send("q", x[:2])
    d.recv()
    assert d.pub.send("q", x[2], no_predict=True) == 2
    d.nothing()
    assert d.pub.send("q", x[3]) == 3
    p = d.recv()
    assert p.seq == 3 and np.max(np.abs(p.y - ref[3])) < TOL  # the NO_PREDICT step moved the state
    d.pub.send("q", x[3], seq=3)  # duplicate
    d.nothing()
    d.pub.send("q", x[4], seq=10)  # gap
    p = d.recv()
    assert p.gap and p.flags == OutputFlags.GAP and p.seq == 10
    s = d.ctl.stats()
    assert s["duplicates"] == 1 and s["gaps"] == 1


def test_no_learn_keeps_the_model(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=["--no-normalize", "--no-combine", "--sync-learning", "--k1", "1", "--k2", "4"])
    x = rows(12, seed=11)
    d.pub.send("l", x[:6], no_learn=True)
    d.recv()
    before = d.ctl.stats()["updates"]
    d.pub.send("l", x[6:9], no_learn=True)
    p = d.recv()
    assert d.ctl.stats()["updates"] == before and p.model_version == before
    d.pub.send("l", x[9:12])
    p = d.recv()
    assert d.ctl.stats()["updates"] > before


def test_json_output_is_the_python_encoding(daemon_factory, models):
    """--output-format json: decoded like binary, and byte for byte what wire.encode_output_json writes."""
    d = daemon_factory(model=models["lstm_features"], args=QUIET + ["--output-format", "json"])
    m = Model.load(models["lstm_features"])
    x = rows(4, seed=12)
    raw = zmq.Context.instance().socket(zmq.SUB)
    raw.setsockopt(zmq.SUBSCRIBE, b"js")
    raw.setsockopt(zmq.RCVTIMEO, 10000)
    raw.connect(d.output)
    # A fresh stream per try until the raw subscription is live (a message sent before is lost to it).
    for i in range(100):
        d.pub.send(f"js{i}", x, ts=123456789)
        p = d.recv()
        assert p.ts == 123456789 and np.max(np.abs(p.y - reference.run(m, x))) < TOL
        if raw.poll(200):
            break
    frames = raw.recv_multipart()
    raw.close()
    assert frames[1][:1] == b"{"
    assert wire.encode_output_json(wire.decode_output(frames[1])) == frames[1]


def test_output_prefix_and_prefix_filter(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET + ["--output-prefix", "pred."], output_prefix="pred.")
    only_b = Subscriber(d.output, "b", output_prefix="pred.")
    x = rows(2, seed=13)
    # Until only_b's subscription is live (what is sent before is lost to it).
    for _ in range(100):
        d.pub.send("b", x[1])
        assert d.recv().key == "b"
        if only_b.recv(0.2) is not None:
            break
    while only_b.recv(0.2) is not None:
        pass
    d.pub.send("a", x[0])
    d.pub.send("b", x[1])
    got = sorted(p.key for p in d.recv_n(2))
    assert got == ["a", "b"]
    p = only_b.recv(5)
    assert p.key == "b" and p.topic == b"pred.b"
    assert only_b.recv(0.3) is None
    only_b.close()


def test_pub_socket_against_the_default_sub_input(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET, input_socket="sub")
    x = rows(3, seed=14)
    d.pub.send("pubsub", x)
    assert d.recv().steps == 3


def test_invalid_payloads_are_rejected_for_the_reason_the_python_decoder_gives(daemon_factory, models):
    """The wire fixtures' invalid inputs through the daemon: its rejection counters agree with
    recurd.wire's reasons, and the service goes on."""
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    manifest = load_manifest(os.path.join(WIRE, "manifest.json"))
    expected = {}
    for e in manifest["files"]:
        if e["direction"] == "input" and "error" in e:
            with open(os.path.join(WIRE, e["file"]), "rb") as fh:
                d.pub.send_raw([b"bad", fh.read()])
            expected[e["error"]["reason"]] = expected.get(e["error"]["reason"], 0) + 1
    d.pub.send("good", rows(1)[0])
    d.recv()
    rejected = d.rejected()
    assert {k: v for k, v in rejected.items() if v} == expected


def test_valid_golden_inputs_are_accepted(daemon_factory, models):
    """Golden payloads of 3 features (binary and JSON) are accepted by a 3-feature model."""
    d = daemon_factory(model=models["lstm_features"], args=QUIET + ["--targets", "explicit"])
    manifest = load_manifest(os.path.join(WIRE, "manifest.json"))
    sent = 0
    for e in manifest["files"]:
        f = e.get("fields")
        if e["direction"] != "input" or f is None or f["input_kind"] != 1 or f["xdim"] != 3 or f["target_kind"] == 1 and f["ydim"] != 3:
            continue
        if f["target_kind"] == 2:
            continue  # class targets need a softmax head
        with open(os.path.join(WIRE, e["file"]), "rb") as fh:
            d.pub.send_raw([f"g{sent}".encode(), fh.read()])
        sent += 1
    assert sent >= 4
    d.pub.send("good", rows(1)[0])
    d.recv()
    assert d.ctl.stats()["rejected_total"] == 0


def test_json_timestamp_is_exact(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET, publisher_format="json")
    d.pub.send("ts", rows(1)[0], ts=1_700_000_000_123_456_789)
    assert d.recv(3).ts == 1_700_000_000_123_456_789


def test_control_commands(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    d.pub.send("c1", rows(4, seed=15))
    d.recv()
    s = d.ctl.stats()
    assert s["ok"] and s["streams"] >= 1 and "uptime_seconds" in s
    st = d.ctl.streams()
    assert any(e["key"] == "c1" for e in st["streams"])
    one = d.ctl.stream("c1")
    assert one["ok"] and one["steps"] == 4 and one["next_seq"] == 4
    assert d.ctl.command("stream c1")["steps"] == 4
    assert d.ctl.command({"command": "stream", "key": "c1"})["next_seq"] == 4
    assert d.ctl.model()["cell"] == "lstm"
    assert d.ctl.reset("c1")["ok"]
    assert d.ctl.drop("c1")["ok"] and not d.ctl.stream("c1")["ok"]
    bad = d.ctl.command("nonsense")
    assert bad["ok"] is False and "error" in bad
    assert d.ctl.learning(False)["learning"] is False


def test_sigterm_exits_zero(daemon_factory, models):
    d = daemon_factory(model=models["lstm_features"], args=QUIET)
    d.pub.send("z", rows(2))
    d.recv()
    assert d.stop() == 0


@needs_daemon
def test_serve_helper_connects_and_names_a_rejected_probe(models):
    """recurd.serve.Serve, as the client README shows it: a probe that fits connects and is dropped
    again; one that does not is named at once, not after the whole timeout."""
    from recurd.serve import Serve
    with Serve(RECURD_BIN, model=models["lstm_features"], args=["--no-learn", "--no-normalize", "--no-combine"]) as d:
        pub, sub, ctl = d.connect(probe={"x": [0.0, 0.0, 0.0]})
        pub.send("k", [1.0, 2.0, 3.0], seq=0)
        p = sub.recv_whole(10)
        assert p.key == "k" and p.y.shape == (1, 3)
        assert "__probe__" not in [s["key"] for s in ctl.streams()["streams"]]
        started = time.monotonic()
        with pytest.raises(ValueError, match="rejected the probe"):
            d.connect(probe={"x": [0.0, 0.0]}, timeout=30)
        assert time.monotonic() - started < 15
        # An earlier rejection does not make the next, fitting probe look rejected.
        pub2, sub2, ctl2 = d.connect(probe={"x": [0.0, 0.0, 0.0]})
        for s in (pub2, sub2, ctl2):
            s.close()


@needs_daemon
def test_serve_helper_says_why_the_daemon_did_not_start(tmp_path):
    """The daemon's own error reaches the exception (the log used to be removed first)."""
    from recurd.serve import Serve
    with pytest.raises(RuntimeError, match=r"exited with status 1: .*missing\.safetensors"):
        Serve(RECURD_BIN, model=str(tmp_path / "missing.safetensors"))
    with pytest.raises(RuntimeError, match="no-such-flag"):
        Serve(RECURD_BIN, args=["--no-such-flag", "1"])
