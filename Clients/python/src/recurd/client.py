"""ZeroMQ clients of ``recurd serve``: publish steps, receive predictions, send control commands.

    from recurd import Publisher, Subscriber, Control

    pub = Publisher("tcp://127.0.0.1:5555")             # a PUB connected to the daemon's input SUB
    pub.wait_ready()                                      # PUB drops messages until the daemon subscribed
    sub = Subscriber("tcp://127.0.0.1:5556")
    pub.send("sensor-1", [0.1, 0.2, 0.3])                # one step; a 2-D array sends many
    p = sub.recv(timeout=1.0)                             # a Prediction, or None on timeout
    print(p.key, p.seq, p.y, p.loss)
    Control("tcp://127.0.0.1:5557").stats()

CURVE, for a daemon started with ``--curve-server-cert`` and ``--curve-clients`` (certificates in the
zcert format that ``zmq.auth.create_certificates`` and ``recurd keygen`` write): pass
``curve_cert="client.key_secret"`` (this client's secret certificate) and ``server_key=`` the
server's public key — its ``server.key`` certificate file, or the Z85 key itself.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import zmq

from . import wire
from .wire import InputKind, InputMessage, OutputFlags, OutputKind, OutputMessage, WireError

__all__ = ["Publisher", "Subscriber", "Control", "Prediction", "ControlTimeout", "apply_curve"]

KeyLike = Union[str, bytes]


def _key_bytes(key: KeyLike) -> bytes:
    b = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not 1 <= len(b) <= 255:
        raise ValueError(f"a stream key is 1–255 bytes of UTF-8; got {len(b)} bytes")
    if b"\x00" in b:
        raise ValueError("a stream key cannot contain a NUL byte")
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a stream key must be UTF-8") from None
    return b


def _load_key(value: Union[str, bytes, os.PathLike], what: str, secret: bool) -> Tuple[bytes, Optional[bytes]]:
    """(public, secret) from a zcert file, or (key, None) from a Z85 string."""
    if isinstance(value, (bytes, str)) and len(value) == 40 and not os.path.exists(os.fsdecode(value)):
        return (value.encode("ascii") if isinstance(value, str) else value), None
    path = os.fspath(value)
    if not os.path.exists(path):
        raise ValueError(f"{what}: {path} is neither a certificate file nor a 40-character Z85 key")
    import zmq.auth  # noqa: WPS433 (only needed with CURVE)
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and secret_key is None:
        raise ValueError(f"{what}: {path} is a public certificate; give the secret one (…_secret)")
    return public, secret_key


def apply_curve(sock: zmq.Socket, curve_cert=None, server_key=None) -> None:
    """Makes ``sock`` a CURVE client: ``curve_cert`` = this client's secret certificate file (or a
    ``(public, secret)`` pair of Z85 keys); ``server_key`` = the server's public certificate file or
    Z85 key. With ``server_key`` alone, a fresh key pair is used (servers with an allow-list refuse
    it). Call before connect."""
    if curve_cert is None and server_key is None:
        return
    if server_key is None:
        raise ValueError("curve_cert needs server_key (the server's public key or its .key certificate file)")
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support")
    if curve_cert is None:
        public, secret = zmq.curve_keypair()
    elif isinstance(curve_cert, tuple):
        public, secret = (k.encode("ascii") if isinstance(k, str) else k for k in curve_cert)
    else:
        public, secret = _load_key(curve_cert, "curve_cert", secret=True)
    server_public, _ = _load_key(server_key, "server_key", secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public


def _open(context: Optional[zmq.Context], kind: int, endpoint: str, bind: bool, curve_cert, server_key) -> zmq.Socket:
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.linger = 1000
    try:
        apply_curve(sock, curve_cert, server_key)
        (sock.bind if bind else sock.connect)(endpoint)
    except Exception:
        sock.close(0)
        raise
    return sock


class Publisher:
    """Sends steps to the daemon's input.

    ``socket="pub"`` (default) pairs with the daemon's default SUB input: like any PUB it drops
    what it sends before the daemon's subscription has arrived (``wait_ready()`` waits for it) or
    while the daemon is away. ``socket="push"`` pairs with ``recurd serve --input-socket pull``: it
    queues and blocks instead of dropping. ``format="json"`` sends the JSON form (for debugging).

    ``send`` keeps each stream's sequence number: the first message of a key is seq 0, each
    message continues where the last ended, ``reset=True`` restarts the numbering at 0, and
    ``end=True`` forgets the key (its next message starts at 0 again, as the daemon forgot it).
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", socket: str = "pub", *, format: str = "binary",
                 bind: bool = False, context: Optional[zmq.Context] = None, curve_cert=None, server_key=None,
                 send_hwm: Optional[int] = None, send_timeout: Optional[float] = None):
        if socket not in ("pub", "push"):
            raise ValueError("socket must be 'pub' or 'push'")
        if format not in ("binary", "json"):
            raise ValueError("format must be 'binary' or 'json'")
        self.endpoint, self.socket_type, self.format = endpoint, socket, format
        # An XPUB sends exactly as a PUB does, and also tells us when a subscriber is there.
        self._sock = _open(context, zmq.XPUB if socket == "pub" else zmq.PUSH, endpoint, bind, curve_cert, server_key)
        if send_hwm is not None:
            self._sock.sndhwm = send_hwm
        if send_timeout is not None:
            self._sock.sndtimeo = int(send_timeout * 1000)
        self._next: Dict[bytes, int] = {}
        self._shape: Dict[bytes, Tuple[InputKind, int]] = {}
        self._last_shape: Optional[Tuple[InputKind, int]] = None
        self._subscribed = False

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Waits until the daemon's input is connected (PUB: its subscription has arrived; PUSH: a
        peer is there). True when ready, False on timeout."""
        deadline = time.monotonic() + timeout
        if self.socket_type == "push":
            return bool(self._sock.poll(int(timeout * 1000), zmq.POLLOUT))
        while True:
            left = deadline - time.monotonic()
            if self._sock.poll(max(0, int(left * 1000)), zmq.POLLIN):
                while self._sock.poll(0, zmq.POLLIN):
                    msg = self._sock.recv()
                    if msg[:1] == b"\x01":
                        self._subscribed = True
                if self._subscribed:
                    time.sleep(0.02)  # the subscription is in; let the connection settle
                    return True
            if time.monotonic() >= deadline:
                return self._subscribed

    def next_seq(self, key: KeyLike) -> int:
        """The seq the next message of ``key`` will carry."""
        return self._next.get(_key_bytes(key), 0)

    def message(self, key: KeyLike, x: Any = None, *, tokens: Any = None, text: Union[str, bytes, None] = None,
                y: Any = None, labels: Any = None, reset: bool = False, end: bool = False, no_learn: bool = False,
                no_predict: bool = False, ts: Optional[int] = None, seq: Optional[int] = None) -> InputMessage:
        """The message ``send`` would send (without sending it or advancing the seq)."""
        k = _key_bytes(key)
        if seq is None:
            seq = 0 if reset else self._next.get(k, 0)
        if ts is None:
            ts = time.time_ns()
        kind, xdim = self._shape.get(k) or self._last_shape or (InputKind.FEATURES, 1)
        return InputMessage.build(x, tokens=tokens, text=text, y=y, labels=labels, reset=reset, end=end,
                                  no_learn=no_learn, no_predict=no_predict, seq=seq, ts=ts, kind=kind, xdim=xdim)

    def send(self, key: KeyLike, x: Any = None, *, tokens: Any = None, text: Union[str, bytes, None] = None,
             y: Any = None, labels: Any = None, reset: bool = False, end: bool = False, no_learn: bool = False,
             no_predict: bool = False, ts: Optional[int] = None, seq: Optional[int] = None,
             format: Optional[str] = None) -> int:
        """Sends one message of one or more steps of stream ``key``; returns the seq of its first step.

        ``x``: one step of features (1-D) or many (2-D, steps × features). ``tokens``: an id or a
        sequence of ids. ``text``: str (UTF-8) or bytes, one step per byte. Targets: ``y`` (a
        vector per step, 1-D for one step) or ``labels`` (a class id per step). ``reset``: zero the
        stream's state first (numbering restarts at 0); ``end``: forget the stream after this
        message; ``no_learn``, ``no_predict`` as the protocol's flags. With no input at all a
        zero-step message is sent (needs ``reset`` or ``end``). ``ts``: ns since the Unix epoch of
        the first step (default now; 0 = unknown). ``seq`` overrides the numbering; ``format``
        ("binary" or "json") overrides the publisher's for this message."""
        k = _key_bytes(key)
        m = self.message(k, x, tokens=tokens, text=text, y=y, labels=labels, reset=reset, end=end, no_learn=no_learn,
                         no_predict=no_predict, ts=ts, seq=seq)
        payload = wire.encode_input_json(m) if (format or self.format) == "json" else wire.encode_input(m)
        self._sock.send_multipart([k, payload])
        if m.steps:
            self._shape[k] = self._last_shape = (m.kind, m.xdim)
        if end:
            self._next.pop(k, None)
            self._shape.pop(k, None)
        else:
            self._next[k] = (int(m.seq) + m.steps) % (1 << 64)   # wraps, as the daemon's seq does
        return int(m.seq)

    def send_message(self, key: KeyLike, message: InputMessage, json_form: Optional[bool] = None) -> None:
        """Sends a prepared message as it is (no seq bookkeeping)."""
        as_json = self.format == "json" if json_form is None else json_form
        self._sock.send_multipart([_key_bytes(key), wire.encode_input_json(message) if as_json else wire.encode_input(message)])

    def send_raw(self, frames) -> None:
        """Sends arbitrary frames (for tests of the daemon's checks)."""
        self._sock.send_multipart([bytes(f) for f in frames])

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Prediction:
    """The predictions of one output message (a run of consecutive steps of one stream).

    ``y``: steps × outputs float32 (the head's outputs: values, or probabilities). For top-k
    output, ``top`` is steps × k uint32 (class ids, most probable first) and ``y`` their
    probabilities (steps × k); otherwise ``top`` is None. ``loss``: the progressive loss per step
    (NaN where nothing was revealed). ``anomaly``: per-step scores in [0, 1] when the daemon sends
    them, else None. ``more``: more outputs for the same input message follow.
    """

    key: str
    seq: int
    y: np.ndarray
    top: Optional[np.ndarray]
    loss: np.ndarray
    anomaly: Optional[np.ndarray]
    model_version: int
    flags: OutputFlags
    ts: int
    more: bool
    topic: bytes = b""
    message: Optional[OutputMessage] = None

    @property
    def steps(self) -> int:
        return int(self.y.shape[0])

    @property
    def seqs(self) -> np.ndarray:
        """The seq of every step."""
        return np.uint64(self.seq) + np.arange(self.steps, dtype=np.uint64)   # wraps at 2^64, as the daemon's

    @property
    def new_state(self) -> bool:
        return bool(self.flags & OutputFlags.NEW_STATE)

    @property
    def gap(self) -> bool:
        return bool(self.flags & OutputFlags.GAP)

    def top_pairs(self, step: int = -1) -> list:
        """[(id, p), …] of one step of top-k output."""
        if self.top is None:
            raise ValueError("not a top-k prediction")
        return [(int(i), float(p)) for i, p in zip(self.top[step], self.y[step])]

    def continued_by(self, nxt: "Prediction") -> bool:
        """Whether ``nxt`` is the next chunk of this answer: same stream, the next seq, no new state."""
        return nxt.key == self.key and nxt.seq == (self.seq + self.steps) % (1 << 64) and not nxt.new_state

    def followed_by(self, nxt: "Prediction") -> "Prediction":
        """This output joined with the next output of the same input message (``self.more`` was
        set): the steps of both; the flags of the first (they describe its first step) with
        ``more`` from the second; the second's model version and timestamp. ``message`` is None,
        as no single payload carries the joined steps."""
        if not self.continued_by(nxt):
            raise ValueError(f"{nxt.key!r} seq {nxt.seq} does not continue {self.key!r} seq {self.seq}…{self.seq + self.steps - 1}")
        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b])
        flags = OutputFlags((self.flags & ~OutputFlags.MORE) | (nxt.flags & OutputFlags.MORE))
        return replace(self, y=np.concatenate([self.y, nxt.y]), top=cat(self.top, nxt.top),
                       loss=np.concatenate([self.loss, nxt.loss]), anomaly=cat(self.anomaly, nxt.anomaly),
                       model_version=nxt.model_version, flags=flags, ts=nxt.ts, more=nxt.more, message=None)

    @classmethod
    def from_frames(cls, topic: bytes, payload: bytes, output_prefix: bytes = b"") -> "Prediction":
        m = wire.decode_output(payload)
        key = topic[len(output_prefix):] if output_prefix and topic.startswith(output_prefix) else topic
        return cls(key=key.decode("utf-8", "replace"), seq=m.seq, y=m.values,
                   top=m.ids if m.kind == OutputKind.TOP_K else None, loss=m.losses, anomaly=m.anomaly,
                   model_version=m.model_version, flags=m.flags, ts=m.ts, more=m.more, topic=topic, message=m)


class Subscriber:
    """Receives predictions from the daemon's output PUB (binary or JSON, told apart per message).

    ``prefix`` filters by key prefix. ``output_prefix`` is the daemon's ``--output-prefix``: it is
    prepended to the filter and stripped from the keys. Like any SUB, it sees only what is
    published after its subscription reached the daemon.
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5556", prefix: KeyLike = "", *, output_prefix: KeyLike = "",
                 bind: bool = False, context: Optional[zmq.Context] = None, curve_cert=None, server_key=None,
                 recv_hwm: Optional[int] = None):
        self.output_prefix = output_prefix.encode("utf-8") if isinstance(output_prefix, str) else bytes(output_prefix)
        filt = self.output_prefix + (prefix.encode("utf-8") if isinstance(prefix, str) else bytes(prefix))
        ctx = context or zmq.Context.instance()
        self._sock = ctx.socket(zmq.SUB)
        self._sock.linger = 0
        # Chunks of answers not yet whole, by stream key (recv_whole).
        self._pending: Dict[str, Prediction] = {}
        try:
            if recv_hwm is not None:
                self._sock.rcvhwm = recv_hwm
            apply_curve(self._sock, curve_cert, server_key)
            self._sock.setsockopt(zmq.SUBSCRIBE, filt)
            (self._sock.bind if bind else self._sock.connect)(endpoint)
        except Exception:
            self._sock.close(0)
            raise

    def recv(self, timeout: Optional[float] = None) -> Optional[Prediction]:
        """The next prediction; None when ``timeout`` seconds pass first (None: wait forever).
        Raises WireError for a malformed output."""
        if timeout is not None and not self._sock.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            return None
        frames = self._sock.recv_multipart()
        if len(frames) != 2:
            raise WireError("frames", f"an output message has {len(frames)} frames; expected 2 (key, payload)")
        return Prediction.from_frames(frames[0], frames[1], self.output_prefix)

    def recv_whole(self, timeout: Optional[float] = None) -> Optional[Prediction]:
        """The whole answer to the next input message to finish, its chunks joined.

        The daemon answers a message in several outputs (all but the last with ``more``) when it
        is longer than ``--max-output-bytes``, and also when a serving cycle's time slice ends in
        the middle of it: a cycle runs at most 64 steps of a message and at most about 2 ms, which
        a loaded machine reaches even with a few-step message. Chunks of other streams' messages
        that arrive meanwhile are kept for later calls. A partial answer that the stream's next
        output does not continue (the rest was lost: the stream was dropped or evicted
        mid-message, or outputs were dropped) is discarded. None when ``timeout`` seconds pass
        first (chunks received so far are kept)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            p = self.recv(left)
            if p is None:
                return None
            before = self._pending.pop(p.key, None)
            if before is not None and before.continued_by(p):
                p = before.followed_by(p)
            if not p.more:
                return p
            self._pending[p.key] = p

    def __iter__(self) -> Iterator[Prediction]:
        while True:
            yield self.recv()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ControlTimeout(TimeoutError):
    """The daemon's control socket did not answer in time."""


class Control:
    """The daemon's control socket (REQ to its REP). Every method returns the decoded JSON reply
    (a dict with ``"ok"``, and ``"error"`` when the command failed) and raises ControlTimeout
    when no reply comes within ``timeout`` seconds."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5557", *, timeout: float = 5.0,
                 context: Optional[zmq.Context] = None, curve_cert=None, server_key=None):
        self.endpoint, self.timeout = endpoint, timeout
        self._context = context or zmq.Context.instance()
        self._curve = (curve_cert, server_key)
        self._sock: Optional[zmq.Socket] = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = _open(self._context, zmq.REQ, self.endpoint, False, *self._curve)
            self._sock.linger = 0
        return self._sock

    def command(self, request: Union[str, Dict[str, Any]], timeout: Optional[float] = None) -> Dict[str, Any]:
        """Sends a text (``"stream sensor-1"``) or JSON (``{"command": "stream", "key": …}``)
        request and returns the reply."""
        text = json.dumps(request) if isinstance(request, dict) else str(request)
        sock = self._socket()
        wait = self.timeout if timeout is None else timeout
        sock.send_string(text)
        if not sock.poll(int(wait * 1000), zmq.POLLIN):
            # A REQ socket that got no reply cannot send again: start over with a new one.
            sock.close(0)
            self._sock = None
            raise ControlTimeout(f"no reply from {self.endpoint} within {wait:g} s to '{text}' (is `recurd serve` running with --control {self.endpoint}?)")
        reply = sock.recv()
        try:
            return json.loads(reply)
        except ValueError:
            raise ValueError(f"the control reply is not JSON: {reply[:200]!r}") from None

    def stats(self) -> Dict[str, Any]:
        return self.command("stats")

    def streams(self) -> Dict[str, Any]:
        return self.command("streams")

    def stream(self, key: str) -> Dict[str, Any]:
        return self.command({"command": "stream", "key": key})

    def reset(self, key: str) -> Dict[str, Any]:
        return self.command({"command": "reset", "key": key})

    def drop(self, key: str) -> Dict[str, Any]:
        return self.command({"command": "drop", "key": key})

    def checkpoint(self) -> Dict[str, Any]:
        return self.command("checkpoint")

    def learning(self, on: bool) -> Dict[str, Any]:
        return self.command(f"learning {'on' if on else 'off'}")

    def set_lr(self, lr: float) -> Dict[str, Any]:
        return self.command(f"set lr={lr!r}")

    def model(self) -> Dict[str, Any]:
        return self.command("model")

    def reload(self) -> Dict[str, Any]:
        return self.command("reload")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> "Control":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
