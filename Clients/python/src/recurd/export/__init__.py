"""Converts Keras 3, PyTorch and ONNX models to recurd model files (DESIGN §2).

    python -m recurd.export --from keras|pytorch|onnx INPUT [--head linear|softmax|sigmoid] -o MODEL.safetensors
    recurd-export …                                          (the same, installed as a script)

The files are read with numpy alone (a small HDF5 reader for ``.keras``, a restricted unpickler for
``torch.save`` files, a protobuf reader for ``.onnx``), so converting needs none of the
frameworks. When the source framework is installed, the converter also runs the source model and
the converted one (``recurd.reference``) on a random sequence and prints the largest difference
of the step-wise predictions; above ``--tolerance`` nothing is written and the exit status is 1.

Anything that cannot be mapped exactly is refused with a message naming the layer or node:
GRU without reset_after / linear_before_reset, bidirectional or reversed layers, peepholes,
projections (proj_size), non-default activations, layers between the recurrent layers and the
head (dropout, identity at inference, is skipped).

Python API::

    from recurd.export import convert
    conv = convert("model.keras")          # source guessed from the file; or source="keras"
    conv.model.save("model.safetensors")
    print(conv.check())                     # None when the framework is not installed
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional

from ._common import CheckResult, Conversion, ExportError

__all__ = ["convert", "convert_keras", "convert_pytorch", "convert_onnx", "main", "ExportError", "Conversion", "CheckResult"]

SOURCES = ("keras", "pytorch", "onnx")


def convert_keras(path: str, **kw: Any) -> Conversion:
    from ._keras import convert_keras as f
    return f(path, **kw)


def convert_pytorch(path: str, **kw: Any) -> Conversion:
    from ._pytorch import convert_pytorch as f
    return f(path, **kw)


def convert_onnx(path: str, **kw: Any) -> Conversion:
    from ._onnx import convert_onnx as f
    return f(path, **kw)


def guess_source(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".keras",):
        return "keras"
    if ext in (".onnx",):
        return "onnx"
    if ext in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"):
        return "pytorch"
    raise ExportError(f"{os.path.basename(path)}: cannot tell the source from the extension; give --from keras|pytorch|onnx")


def convert(path: str, source: Optional[str] = None, head: Optional[str] = None, **options: Any) -> Conversion:
    """Converts ``path``; ``source`` is keras, pytorch or onnx (guessed from the extension when
    None); ``head`` is the activation to write (required knowledge for PyTorch state dicts, which
    do not record it; for Keras/ONNX it must agree with the model unless the model outputs logits).
    Options (PyTorch): ``rnn_prefix``, ``head_prefix``, ``embed_prefix``, ``ignore``, ``stack`` (the
    recurrent modules' prefixes in the order ``forward()`` runs them, when there are several)."""
    if not os.path.exists(path):
        raise ExportError(f"{path}: no such file")
    source = source or guess_source(path)
    if source not in SOURCES:
        raise ExportError(f"unknown source '{source}' (expected keras, pytorch or onnx)")
    return {"keras": convert_keras, "pytorch": convert_pytorch, "onnx": convert_onnx}[source](path, head=head, **options)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of steps, at least 1 (got {text!r})")
    return n


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="recurd-export", description="Convert a Keras 3, PyTorch or ONNX LSTM/GRU model to a recurd model file.")
    p.add_argument("input", metavar="INPUT", help="the .keras, .pt/.pth/.safetensors (state dict) or .onnx file")
    p.add_argument("--from", dest="source", choices=SOURCES, help="the source framework (default: from the extension)")
    p.add_argument("--head", choices=("linear", "softmax", "sigmoid"),
                   help="the head's activation (PyTorch state dicts do not record it: default linear; Keras/ONNX: the model's own)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.safetensors", help="the recurd model file to write")
    p.add_argument("--rnn-prefix", help="PyTorch: the nn.LSTM/nn.GRU module's prefix, e.g. encoder.rnn (default: found)")
    p.add_argument("--head-prefix", help="PyTorch: the nn.Linear head's prefix, e.g. fc (default: found)")
    p.add_argument("--embed-prefix", help="PyTorch: the nn.Embedding's prefix (default: found)")
    p.add_argument("--stack", metavar="A,B,…", help="PyTorch: several nn.LSTM/nn.GRU modules, each feeding its output sequence to "
                   "the next, in the order forward() runs them, e.g. lstm1,lstm2 (a state dict does not record it)")
    p.add_argument("--ignore", action="append", default=[], metavar="PREFIX", help="PyTorch: leave out the tensors of module PREFIX, e.g. aux_head (repeatable)")
    p.add_argument("--no-check", action="store_true", help="do not run the source framework to check the conversion")
    p.add_argument("--check-steps", type=_positive, default=12, help="length of the random check sequence (default 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check sequence")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest difference the check accepts (default 1e-4)")
    args = p.parse_args(argv)
    try:
        conv = convert(args.input, args.source, args.head, rnn_prefix=args.rnn_prefix, head_prefix=args.head_prefix,
                       embed_prefix=args.embed_prefix, ignore=args.ignore,
                       stack=[p for p in args.stack.split(",") if p] if args.stack else None)
        print(f"{os.path.basename(args.input)} ({conv.source}): {conv.model.describe()}")
        for note in conv.notes:
            print(f"  note: {note}")
        if not args.no_check:
            if conv.checker is None:
                print(f"  not checked: {conv.unchecked_reason or 'no checker'}")
            else:
                try:
                    result = conv.check(args.check_steps, args.seed)
                except ExportError:
                    raise
                except Exception as e:  # the framework itself failed to run the source model
                    print(f"error: the check could not run {os.path.basename(args.input)} in {conv.source}: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}; nothing written (--no-check converts "
                          "without running it)", file=sys.stderr)
                    return 1
                print(f"  {result}")
                if not result.max_diff <= args.tolerance:
                    print(f"error: the converted model differs from the source by {result.max_diff:.3g} > --tolerance {args.tolerance:g}; "
                          "nothing written", file=sys.stderr)
                    return 1
        if not args.output.endswith(".safetensors"):
            print(f"  note: {args.output} is written as a recurd model file (safetensors), whatever its name", file=sys.stderr)
        try:
            conv.model.save(args.output)
        except OSError as e:
            print(f"error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return 1
        print(f"wrote {args.output}")
        return 0
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
