"""Start ``recurd serve`` as a child process on private ipc endpoints — for examples, notebooks and
tests of your own code::

    from recurd.serve import Serve
    with Serve("/usr/local/bin/recurd", model="m.safetensors", args=["--no-learn"]) as d:
        pub, sub, ctl = d.publisher(), d.subscriber(), d.control()
        pub.send("s", [0.1, 0.2])
        print(sub.recv(timeout=5))

The binary is the ``binary`` argument, else ``$RECURD_BIN``, else ``recurd`` on the PATH.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Optional, Sequence

__all__ = ["Serve", "find_binary"]


def find_binary(binary: Optional[str] = None) -> str:
    b = binary or os.environ.get("RECURD_BIN") or shutil.which("recurd")
    if not b or not os.path.exists(b):
        where = (f"{b} does not exist" if b else "RECURD_BIN is not set and there is no `recurd` on the PATH")
        raise FileNotFoundError(f"no recurd binary: {where}; build it (swift build -c release --product recurd) "
                                "and pass its path or set RECURD_BIN")
    return b


class Serve:
    """``recurd serve`` with ``--input`` (PULL), ``--output`` and ``--control`` on ipc endpoints in a
    temporary directory and no HTTP port; ``args`` are added to the command line."""

    def __init__(self, binary: Optional[str] = None, *, model: Optional[str] = None, args: Sequence[str] = (),
                 input_socket: str = "pull", startup_timeout: float = 30.0, log: Optional[str] = None):
        self.binary = find_binary(binary)
        self.dir = tempfile.mkdtemp(prefix="recurd-")
        self.input = f"ipc://{self.dir}/in"
        self.output = f"ipc://{self.dir}/out"
        self.control_endpoint = f"ipc://{self.dir}/ctl"
        self.input_socket = input_socket
        self.log_path = log or os.path.join(self.dir, "recurd.log")
        self._log = open(self.log_path, "wb")
        cmd = [self.binary, "serve", "--input", self.input, "--input-socket", input_socket, "--output", self.output,
               "--control", self.control_endpoint, "--http", ""]
        if model:
            cmd += ["--model", model]
        self.command = cmd + list(args)
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout
        while "serving" not in self.log:
            # The log is read before stop(), which removes the folder it is in.
            if self.process.poll() is not None:
                why = self.log.strip()
                self.stop()
                raise RuntimeError(f"recurd serve exited with status {self.process.returncode}: {why}")
            if time.monotonic() > deadline:
                why = self.log.strip()
                self.stop()
                raise TimeoutError(f"recurd serve did not start within {startup_timeout} s: {why}")
            time.sleep(0.02)

    @property
    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def publisher(self, **kw):
        from .client import Publisher
        return Publisher(self.input, "push" if self.input_socket == "pull" else "pub", **kw)

    def subscriber(self, prefix: str = "", **kw):
        from .client import Subscriber
        return Subscriber(self.output, prefix, **kw)

    def control(self, **kw):
        from .client import Control
        return Control(self.control_endpoint, **kw)

    def connect(self, probe: dict, timeout: float = 10.0, **publisher_options):
        """(publisher, subscriber, control), once a probe message (``probe``: the keyword arguments
        of ``Publisher.send`` for one step that fits the model, e.g. ``{"x": [0, 0]}`` or
        ``{"text": " "}``) has come back as a prediction — from then on the subscriber sees every
        prediction. The probe stream (``__probe__``, sent with NO_LEARN) is dropped afterwards."""
        pub, sub, ctl = self.publisher(**publisher_options), self.subscriber(), self.control()
        deadline, seq = time.monotonic() + timeout, 0

        def rejected_so_far() -> int:
            try:
                return int(ctl.stats().get("rejected_total", 0))
            except Exception:
                return 0

        def fail(error: Exception) -> None:
            for s in (pub, sub, ctl):
                s.close()
            raise error

        baseline = rejected_so_far()
        lines_before = len(self.log.splitlines())
        while True:
            pub.send("__probe__", **probe, no_learn=True, seq=seq)
            seq += 1
            p = sub.recv(0.1)
            if p is not None and p.key == "__probe__":
                while sub.recv(0.05) is not None:
                    pass
                ctl.drop("__probe__")
                return pub, sub, ctl
            # A probe that does not fit the model is rejected at once: say so instead of waiting out the timeout.
            if seq % 5 == 0 and rejected_so_far() > baseline:
                why = [line for line in self.log.splitlines()[lines_before:] if "rejected" in line and "__probe__" in line]
                fail(ValueError(f"the daemon rejected the probe {probe!r}: {why[-1].strip() if why else 'see its log'}"))
            if time.monotonic() > deadline:
                fail(TimeoutError(f"no prediction for the probe within {timeout} s: {self.log.strip()[-2000:]}"))

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM (the daemon drains and exits 0); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> "Serve":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
