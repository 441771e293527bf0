"""Shared fixtures: paths of the repository's fixtures, and the real daemon (`recurd serve`) on ipc
endpoints in a temporary directory.

The daemon binary is $RECURD_BIN, by default .build/release/recurd of this checkout; tests that need
it are skipped (with the path in the reason) only when that file does not exist and $RECURD_BIN is
unset; `make test` sets it, so there a missing binary fails the run.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "src"))  # run from a checkout without installing

WIRE = os.path.join(REPO, "Tests", "Fixtures", "wire")
EXPORT = os.path.join(REPO, "Tests", "Fixtures", "export")
REFERENCE = os.path.join(REPO, "Tests", "Fixtures", "reference")
RECURD_BIN = os.environ.get("RECURD_BIN") or os.path.join(REPO, ".build", "release", "recurd")
if os.environ.get("RECURD_BIN") and not os.path.exists(RECURD_BIN):
    # `make test` names the binary it built: a missing one is an error, not a reason to skip.
    raise RuntimeError(f"RECURD_BIN={RECURD_BIN} does not exist")

needs_daemon = pytest.mark.skipif(not os.path.exists(RECURD_BIN),
                                  reason=f"no recurd binary at {RECURD_BIN} (build it with `make release`, or set RECURD_BIN)")


def recurd(*args, check=True, timeout=60):
    """Runs the recurd CLI; returns CompletedProcess."""
    r = subprocess.run([RECURD_BIN, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"recurd {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


class Daemon:
    """`recurd serve` with ipc endpoints; `pub`, `sub`, `ctl` are recurd clients connected to it."""

    def __init__(self, args, model=None, input_socket="pull", publisher_format="binary", probe=("features", 3), output_prefix="",
                 curve=None):
        from recurd import Control, Publisher, Subscriber
        self.dir = tempfile.mkdtemp(prefix="rcd")  # short: ipc paths are limited to ~100 bytes
        self.input = f"ipc://{self.dir}/in"
        self.output = f"ipc://{self.dir}/out"
        self.control = f"ipc://{self.dir}/ctl"
        self.log_path = os.path.join(self.dir, "daemon.log")
        self._log = open(self.log_path, "wb")
        cmd = [RECURD_BIN, "serve", "--input", self.input, "--input-socket", input_socket, "--output", self.output,
               "--control", self.control, "--http", "", *(["--model", model] if model else []), *args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.pub = self.sub = self.ctl = None
        try:
            self._wait_log("serving", 30)
            # curve: (this client's secret certificate, the server's public one) for a CURVE daemon.
            keys = dict(curve_cert=curve[0], server_key=curve[1]) if curve else {}
            self.pub = Publisher(self.input, "push" if input_socket == "pull" else "pub", format=publisher_format, **keys)
            self.sub = Subscriber(self.output, output_prefix=output_prefix, **keys)
            self.ctl = Control(self.control, timeout=10, **keys)
            if input_socket != "pull":
                assert self.pub.wait_ready(10), f"the daemon never subscribed: {self.log}"
            self.probe_kind, self.probe_width = probe
            self._probe_seq = 0
            self._wait_subscription()
        except Exception:
            self.stop()
            raise

    @property
    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def _wait_log(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"recurd serve exited with {self.proc.returncode}: {self.log}")
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for '{needle}' in the daemon's log: {self.log}")

    def _wait_subscription(self):
        """Probes on a stream of its own until a prediction comes back (then the output
        subscription is live)."""
        for _ in range(100):
            if self.probe_kind == "text":
                self.pub.send("__probe__", text=b" ", no_learn=True, seq=self._probe_seq)
            elif self.probe_kind == "tokens":
                self.pub.send("__probe__", tokens=[0], no_learn=True, seq=self._probe_seq)
            else:
                self.pub.send("__probe__", np.zeros(self.probe_width, np.float32), no_learn=True, seq=self._probe_seq)
            self._probe_seq += 1
            p = self.sub.recv(0.1)
            if p is not None and p.key.endswith("__probe__"):
                while self.sub.recv(0.05) is not None:
                    pass
                return
        raise AssertionError(f"no prediction for the probe stream: {self.log}")

    def recv(self, timeout=10.0):
        """The next whole answer (chunks joined) that is not a probe's; fails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.sub.recv_whole(max(0.0, deadline - time.monotonic()))
            if p is None:
                raise AssertionError(f"no prediction within {timeout} s; daemon log: {self.log[-2000:]}")
            if not p.key.endswith("__probe__"):
                return p

    def recv_n(self, n, timeout=10.0):
        return [self.recv(timeout) for _ in range(n)]

    def nothing(self, wait=0.3):
        """Asserts no (non-probe) prediction arrives within `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            p = self.sub.recv(max(0.0, deadline - time.monotonic()))
            if p is None:
                return
            assert p.key.endswith("__probe__"), f"unexpected prediction {p.key} seq {p.seq}"

    def rejected(self):
        return self.ctl.stats()["rejected"]

    def stop(self):
        for c in (self.pub, self.sub, self.ctl):
            if c is not None:
                c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


@pytest.fixture
def daemon_factory():
    started = []

    def start(args=(), **kw):
        d = Daemon(list(args), **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Model files made by `recurd init` (seeded): name → path."""
    if not os.path.exists(RECURD_BIN):
        pytest.skip(f"no recurd binary at {RECURD_BIN}")
    d = tmp_path_factory.mktemp("models")
    specs = {
        "lstm_features": ["--cell", "lstm", "--hidden", "16,8", "--input-size", "3", "--output-size", "3", "--head", "linear", "--seed", "4"],
        "gru_features_sigmoid": ["--cell", "gru", "--hidden", "12", "--input-size", "3", "--output-size", "2", "--head", "sigmoid", "--seed", "5"],
        "gru_text": ["--cell", "gru", "--hidden", "24", "--vocab", "256", "--embed", "8", "--output-size", "256", "--head", "softmax", "--seed", "6"],
        "lstm_tokens": ["--cell", "lstm", "--hidden", "10,6", "--vocab", "300", "--embed", "5", "--output-size", "7", "--head", "softmax", "--seed", "7"],
        "lstm_features_softmax": ["--cell", "lstm", "--hidden", "8", "--input-size", "3", "--output-size", "4", "--head", "softmax", "--seed", "8"],
    }
    out = {}
    for name, args in specs.items():
        path = str(d / f"{name}.safetensors")
        recurd("init", *args, "-o", path)
        out[name] = path
    return out


def load_manifest(path):
    with open(path) as fh:
        return json.load(fh)
