from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from ..modelfile import Model, ModelFileError
from .. import reference

HEADS = ("linear", "softmax", "sigmoid")

# recurd's gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n.
KERAS_LSTM = [0, 1, 2, 3]   # Keras i, f, c, o  -> i, f, g, o (the same order; c is g)
KERAS_GRU = [1, 0, 2]       # Keras z, r, h     -> r, z, n
ONNX_LSTM = [0, 2, 3, 1]    # ONNX  i, o, f, c  -> i, f, g, o
ONNX_GRU = [1, 0, 2]        # ONNX  z, r, h     -> r, z, n


class ExportError(ValueError):
    """The source model cannot be mapped exactly onto a recurd model; the message says which
    layer or node and why."""


def build_model(where: str, *args, **kwargs) -> Model:
    """``Model(*args, **kwargs)``, its refusals (non-finite weights, shapes that do not fit) as an
    ExportError naming the source ``where``, so that the command line reports them as it does
    every other refusal."""
    try:
        return Model(*args, **kwargs)
    except ModelFileError as e:
        raise ExportError(f"{where}: the converted model is not valid: {e}") from None


def permute_gates(a: np.ndarray, order: List[int], gates: int) -> np.ndarray:
    """Reorders the gate blocks along axis 0 (G·H rows): block i of the result is block
    ``order[i]`` of ``a``."""
    h = a.shape[0] // gates
    if h * gates != a.shape[0]:
        raise ExportError(f"{a.shape[0]} rows are not {gates} gate blocks")
    return np.concatenate([a[j * h:(j + 1) * h] for j in order], axis=0)


def resolve_head(source: str, requested: Optional[str], where: str, notes: List[str]) -> str:
    """The head to write: the source's own activation, or ``requested`` on a source that outputs
    logits (linear)."""
    if requested is None or requested == source:
        return source
    if requested not in HEADS:
        raise ExportError(f"--head {requested}: expected one of {', '.join(HEADS)}")
    if source == "linear":
        notes.append(f"{where} outputs logits; the recurd model applies {requested} to them (--head {requested})")
        return requested
    raise ExportError(f"{where} ends in {source}, but --head {requested} was given")


@dataclass
class CheckResult:
    framework: str
    steps: int
    max_diff: float
    detail: str = ""

    def __str__(self) -> str:
        return (f"checked against {self.framework} on a random {self.steps}-step sequence "
                f"(prediction at every step t for the prefix up to t): max |difference| = {self.max_diff:.3g}"
                + (f" ({self.detail})" if self.detail else ""))


@dataclass
class Conversion:
    """A converted model, what was noted on the way, and (when the source framework is installed)
    a check that runs the source and the converted model on the same random sequence."""
    model: Model
    source: str
    notes: List[str] = field(default_factory=list)
    checker: Optional[Callable[[int, int], CheckResult]] = None
    unchecked_reason: str = ""

    def check(self, steps: int = 12, seed: int = 0) -> Optional[CheckResult]:
        if self.checker is None:
            return None
        return self.checker(steps, seed)


def random_inputs(model: Model, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if model.embed is not None:
        return rng.integers(0, model.embed.shape[0], size=steps)
    return rng.normal(0.0, 1.0, size=(steps, model.input_size)).astype(np.float32)


def compare(model: Model, inputs, source_outputs: np.ndarray, source_head: str) -> float:
    """max |reference − source| where ``source_outputs`` is steps × O from the framework (logits
    if the source head was linear and the recurd head is not)."""
    ours = reference.run(model, inputs)
    theirs = np.asarray(source_outputs, np.float64).reshape(ours.shape)
    if source_head != model.head:
        theirs = reference.head_activation(theirs, model.head)
    return float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
