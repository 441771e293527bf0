"""A fresh `recurd serve` for a benchmark: ipc endpoints in a temporary folder, a PUSH into its
PULL input and a SUB on its output, the control endpoint for `recurd.client.Control`. Used as a
context manager; closing stops the daemon and removes the folder.
"""
import shutil
import subprocess
import tempfile

import zmq


class LocalDaemon:
    def __init__(self, recurd, flags=(), subscribe=b""):
        self.folder = tempfile.mkdtemp(prefix="recurd-bench-")
        self.endpoints = {k: f"ipc://{self.folder}/{k}" for k in ("in", "out", "ctl")}
        self.process = subprocess.Popen([recurd, "serve", "--input", self.endpoints["in"], "--input-socket", "pull",
                                         "--output", self.endpoints["out"], "--control", self.endpoints["ctl"], "--http", "",
                                         "--log-level", "warning", *flags], stderr=subprocess.DEVNULL)
        self.context = zmq.Context()
        self.push = self.context.socket(zmq.PUSH)
        self.push.connect(self.endpoints["in"])
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, subscribe)
        self.sub.connect(self.endpoints["out"])

    @property
    def pid(self):
        return self.process.pid

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.context.destroy(linger=0)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
