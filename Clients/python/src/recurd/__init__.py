"""recurd — the Python side of the recurd daemon: wire protocol v1 (``recurd.wire``), ZeroMQ
clients (``Publisher``, ``Subscriber``, ``Control``), model files and recurd's model maths in numpy
(``recurd.modelfile``, ``recurd.reference``), and converters from Keras, PyTorch and ONNX
(``recurd.export``, also ``recurd-export``)."""

__version__ = "0.4.0"

from .wire import InputFlags, InputKind, InputMessage, OutputFlags, OutputKind, OutputMessage, TargetKind, WireError  # noqa: E402


def __getattr__(name):
    # The clients need pyzmq; import them lazily so that wire/reference/export work without it.
    if name in ("Publisher", "Subscriber", "Control", "Prediction", "ControlTimeout"):
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module 'recurd' has no attribute '{name}'")


__all__ = ["Publisher", "Subscriber", "Control", "Prediction", "ControlTimeout", "InputMessage", "OutputMessage",
           "InputKind", "TargetKind", "InputFlags", "OutputKind", "OutputFlags", "WireError", "__version__"]
