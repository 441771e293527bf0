"""CURVE against the real daemon with certificates made by pyzmq (zmq.auth.create_certificates),
the format `recurd keygen` also writes: an allowed client round-trips every kind of message; a
plaintext subscriber and an unknown producer get nothing; `recurd keygen`'s files load in pyzmq."""
import os
import shutil
import time

import numpy as np
import pytest
import zmq
import zmq.auth

from conftest import needs_daemon, recurd
from recurd import Publisher, Subscriber

pytestmark = needs_daemon


@pytest.fixture
def certs(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ["server", "client", "stranger"]:
        zmq.auth.create_certificates(str(keys), name)
    clients = tmp_path / "clients"
    for role in ["producers", "consumers", "operators"]:
        (clients / role).mkdir(parents=True)
        shutil.copy(keys / "client.key", clients / role / "client.key")
    return keys, clients


def test_pyzmq_certificates_secure_every_endpoint(daemon_factory, models, certs):
    keys, clients = certs
    secured = ["--curve-server-cert", str(keys / "server.key_secret"), "--curve-clients", str(clients)]
    d = daemon_factory(model=models["lstm_features"], args=["--no-learn", *secured],
                       curve=(str(keys / "client.key_secret"), str(keys / "server.key")))
    # An allowed client: every message type goes through.
    d.pub.send("a", np.ones(3, np.float32), reset=True)
    d.pub.send("a", np.ones((2, 3), np.float32))
    assert [p.seq for p in d.recv_n(2)] == [0, 1]
    d.pub.send("a", end=True)
    stats = d.ctl.stats()
    assert stats["ok"] and stats["auth_denied"] == {"input": 0, "output": 0, "control": 0}

    # A plaintext subscriber and an unknown producer get nothing in and nothing out.
    plain = Subscriber(d.output)
    stranger = Publisher(d.input, "push", curve_cert=str(keys / "stranger.key_secret"), server_key=str(keys / "server.key"))
    stranger.send("x", np.zeros(3, np.float32))
    d.pub.send("b", np.ones(3, np.float32))
    assert d.recv().key == "b"
    assert plain.recv(timeout=0.5) is None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        denied = d.ctl.stats()["auth_denied"]
        if denied["input"] >= 1 and denied["output"] >= 1:
            break
        time.sleep(0.05)
    assert denied["input"] >= 1 and denied["output"] >= 1, denied
    assert "x" not in [s["key"] for s in d.ctl.streams()["streams"]]
    plain.close()
    stranger.close()


def test_recurd_keygen_files_load_in_pyzmq(tmp_path):
    recurd("keygen", "sensor-1", "--dir", str(tmp_path))
    public, secret = zmq.auth.load_certificate(str(tmp_path / "sensor-1.key_secret"))
    public_only, none = zmq.auth.load_certificate(str(tmp_path / "sensor-1.key"))
    assert public == public_only and none is None and len(secret) == 40
    assert zmq.curve_public(secret) == public
    assert os.stat(tmp_path / "sensor-1.key_secret").st_mode & 0o777 == 0o600
