"""The clients without the daemon: what Publisher puts on the wire (seq bookkeeping, flags, zero-step
messages, JSON), Subscriber decoding every output form (anomaly scores, MORE, top-k, JSON), Control's
timeout, and CURVE against a local pyzmq server."""
import json
import math
import os
import threading

import numpy as np
import pytest
import zmq
import zmq.auth

from conftest import WIRE, load_manifest
from recurd import Control, ControlTimeout, Prediction, Publisher, Subscriber, wire
from recurd.wire import InputFlags, InputKind, OutputFlags


@pytest.fixture
def sink(tmp_path):
    """A PULL socket the Publisher's PUSH connects to; returns (endpoint, receive())."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PULL)
    ep = f"ipc://{tmp_path}/sink"
    s.bind(ep)
    s.rcvtimeo = 2000

    def receive():
        key, payload = s.recv_multipart()
        return key.decode(), wire.decode_input(payload)

    yield ep, receive
    s.close(0)


def test_publisher_sequence_numbers_and_flags(sink):
    ep, receive = sink
    with Publisher(ep, "push") as pub:
        assert pub.send("a", [1, 2, 3], ts=5) == 0
        assert pub.send("a", np.ones((4, 3))) == 1
        assert pub.send("b", tokens=[1, 2]) == 0
        assert pub.next_seq("a") == 5
        assert pub.send("a", [0, 0, 0], reset=True) == 0      # numbering restarts at 0
        assert pub.send("a", reset=True) == 0                  # a zero-step reset
        assert pub.next_seq("a") == 0
        assert pub.send("a", [1, 1, 1], no_learn=True, no_predict=True) == 0
        assert pub.send("a", end=True) == 1                    # zero-step end forgets the stream
        assert pub.next_seq("a") == 0
        assert pub.send("a", [2, 2, 2], y=[1, 0, 1]) == 0
        assert pub.send("c", text="hé", labels=[1, 2, 3], seq=40) == 40
        got = [receive() for _ in range(9)]
    k, m = got[0]
    assert k == "a" and (m.seq, m.steps, m.xdim, m.ts, int(m.flags)) == (0, 1, 3, 5, 0)
    assert got[1][1].seq == 1 and got[1][1].steps == 4
    assert got[2][1].kind == InputKind.TOKENS
    assert got[3][1].flags == InputFlags.RESET and got[3][1].seq == 0
    zero = got[4][1]
    assert zero.steps == 0 and zero.flags == InputFlags.RESET and zero.kind == InputKind.FEATURES and zero.xdim == 3, \
        "a zero-step message carries the stream's kind and width"
    assert got[5][1].flags == InputFlags.NO_LEARN | InputFlags.NO_PREDICT
    assert got[6][1].flags == InputFlags.END and got[6][1].steps == 0 and got[6][1].seq == 1
    assert got[7][1].y.tolist() == [[1, 0, 1]]
    assert got[8][1].kind == InputKind.TEXT and got[8][1].text == "hé".encode() and got[8][1].labels.tolist() == [1, 2, 3]
    assert got[8][1].seq == 40
    assert got[8][1].ts > 1_600_000_000_000_000_000  # ts defaults to now


def test_publisher_json_and_key_checks(sink):
    ep, receive = sink
    with Publisher(ep, "push", format="json") as pub:
        pub.send("j", [[1, 2], [3, 4]], ts=0)
        pub.send("j", [5, 6], format="binary", ts=0)
        k, m = receive()
        assert m.steps == 2 and m.seq == 0
        k, m = receive()
        assert m.seq == 2
        for bad in ("", "x" * 256, "a\0b", b"\xff"):
            with pytest.raises(ValueError, match="key"):
                pub.send(bad, [1.0])
        with pytest.raises(ValueError, match="reset or end|RESET or END|empty"):
            pub.send("j")


def test_subscriber_decodes_every_golden_output(tmp_path):
    manifest = load_manifest(os.path.join(WIRE, "manifest.json"))
    outputs = [e for e in manifest["files"] if e["direction"] == "output" and "fields" in e]
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    ep = f"ipc://{tmp_path}/out"
    pub.bind(ep)
    sub = Subscriber(ep, "k", output_prefix="p.")
    # wait for the subscription
    for _ in range(200):
        pub.send_multipart([b"p.k", open(os.path.join(WIRE, outputs[0]["file"]), "rb").read()])
        if sub.recv(0.02) is not None:
            break
    while sub.recv(0.05) is not None:
        pass
    for e in outputs:
        with open(os.path.join(WIRE, e["file"]), "rb") as fh:
            pub.send_multipart([b"p.key", fh.read()])
        pub.send_multipart([b"p.other", b"ignored: filtered by prefix"])
    for e in outputs:
        p = sub.recv(2)
        f = e["fields"]
        assert p.key == "key" and p.topic == b"p.key"
        assert (p.seq, p.steps, p.model_version, p.ts, p.more) == (f["seq"], f["steps"], f["model_version"], f["ts"], f["more"])
        assert int(p.flags) == f["flags"] and p.new_state == ("NEW_STATE" in f["flag_names"]) and p.gap == ("GAP" in f["flag_names"])
        assert (p.anomaly is None) == (f["anomaly"] is None)
        if f["anomaly"] is not None:
            np.testing.assert_array_equal(p.anomaly, np.array([math.nan if v is None else v for v in f["anomaly"]], np.float32))
        assert (p.top is None) == (f["ids"] is None)
        if p.top is not None:
            assert p.top.tolist() == f["ids"] and p.top_pairs(0)[0][0] == f["ids"][0][0]
        assert p.seqs.tolist() == list(range(f["seq"], f["seq"] + f["steps"]))
    assert sub.recv(0.2) is None
    sub.close()
    pub.close(0)


def test_control_timeout_is_clear(tmp_path):
    ctl = Control(f"ipc://{tmp_path}/nobody", timeout=0.3)
    with pytest.raises(ControlTimeout, match=r"no reply from ipc://.* within 0.3 s"):
        ctl.stats()
    with pytest.raises(TimeoutError):  # and again: the REQ socket was replaced
        ctl.streams()
    ctl.close()


def _rep_server(ep, server_secret_file, stop):
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)
    pub_key, sec_key = zmq.auth.load_certificate(server_secret_file)
    rep.curve_server = True
    rep.curve_publickey, rep.curve_secretkey = pub_key, sec_key
    rep.bind(ep)
    while not stop.is_set():
        if rep.poll(50):
            req = rep.recv_string()
            rep.send_string(json.dumps({"ok": True, "echo": req}))
    rep.close(0)


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_curve_options(tmp_path):
    server_pub, server_sec = zmq.auth.create_certificates(str(tmp_path), "server")
    client_pub, client_sec = zmq.auth.create_certificates(str(tmp_path), "client")
    ep = f"ipc://{tmp_path}/curve"
    stop = threading.Event()
    t = threading.Thread(target=_rep_server, args=(ep, server_sec, stop), daemon=True)
    t.start()
    try:
        ctl = Control(ep, timeout=3, curve_cert=client_sec, server_key=server_pub)
        assert ctl.stats() == {"ok": True, "echo": "stats"}
        ctl.close()
        z85 = zmq.auth.load_certificate(server_pub)[0].decode()
        ctl = Control(ep, timeout=3, server_key=z85)  # an ephemeral client key
        assert ctl.command({"command": "stream", "key": "k"})["ok"]
        ctl.close()
        plain = Control(ep, timeout=0.5)  # no CURVE: the server does not answer
        with pytest.raises(ControlTimeout):
            plain.stats()
        plain.close()
        with pytest.raises(ValueError, match="server_key"):
            Publisher(ep, curve_cert=client_sec)
        with pytest.raises(ValueError, match="public certificate"):
            Subscriber(ep, curve_cert=client_pub, server_key=server_pub)
    finally:
        stop.set()
        t.join(2)


def test_prediction_from_frames():
    data = wire.encode_output(wire.OutputMessage.build([[0.25, 0.75]], [0.5], anomaly=[0.9], seq=3, more=True))
    p = Prediction.from_frames(b"x.k1", data, b"x.")
    assert p.key == "k1" and p.more and p.anomaly.tolist() == [pytest.approx(0.9)] and p.flags & OutputFlags.ANOMALY


def test_recv_whole_joins_chunks_per_stream():
    """Chunks of two streams' answers interleave; each comes back whole, in finishing order."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = Subscriber(f"tcp://127.0.0.1:{port}", output_prefix="p.")
    try:
        def out(key, rows, losses, **kw):
            return [b"p." + key, wire.encode_output(wire.OutputMessage.build(rows, losses, **kw))]
        chunks = [out(b"a", [[1.0], [2.0]], [np.nan, 0.5], seq=10, new_state=True, more=True, model_version=1),
                  out(b"b", [[7.0]], [0.1], seq=0, more=True),
                  out(b"a", [[3.0]], [0.25], seq=12, more=True, model_version=2),
                  out(b"b", [[8.0]], [0.2], seq=1),
                  out(b"a", [[4.0]], [0.125], seq=13, model_version=3)]
        for _ in range(100):  # until the subscription is live
            pub.send_multipart(out(b"probe", [[0.0]], [0.0]))
            if sub.recv(0.05) is not None:
                break
        while sub.recv(0.05) is not None:
            pass
        for c in chunks:
            pub.send_multipart(c)
        b = sub.recv_whole(3)
        a = sub.recv_whole(3)
        assert b.key == "b" and b.y[:, 0].tolist() == [7.0, 8.0] and b.loss.tolist() == [pytest.approx(0.1), pytest.approx(0.2)]
        assert not b.more and b.seq == 0 and b.steps == 2
        assert a.key == "a" and a.y[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0] and a.seqs.tolist() == [10, 11, 12, 13]
        assert math.isnan(a.loss[0]) and a.loss[1:].tolist() == [0.5, 0.25, 0.125]
        assert a.new_state and not a.more and a.model_version == 3
        assert sub.recv_whole(0.1) is None
        with pytest.raises(ValueError, match="does not continue"):
            a.followed_by(b)
        # A partial answer whose rest was lost is not glued to the stream's next message.
        pub.send_multipart(out(b"a", [[5.0]], [0.1], seq=14, more=True))
        pub.send_multipart(out(b"a", [[6.0], [7.0]], [np.nan, 0.2], seq=0, new_state=True))
        fresh = sub.recv_whole(3)
        assert fresh.seq == 0 and fresh.steps == 2 and fresh.new_state
    finally:
        sub.close()
        pub.close(0)
