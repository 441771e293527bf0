"""Reads ``torch.save`` files (the zip format of torch ≥ 1.6) into numpy without torch and without
running arbitrary pickled code: only tensors, containers and plain values are rebuilt; anything
else (a pickled ``nn.Module``, custom classes) is refused with a hint to save a ``state_dict()``."""
from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any, Dict

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": "bf16",
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    pass


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _DType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *rest):
    arr = storage
    if not isinstance(arr, np.ndarray):
        raise TorchFileError(f"a tensor's storage is a {type(arr).__name__}, not a storage")
    try:
        offset, size, stride = int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride)
    except (TypeError, ValueError):
        raise TorchFileError(f"a tensor's offset, size or stride is not whole numbers ({offset!r}, {size!r}, {stride!r})") from None
    # Checked before any view is made: as_strided trusts its arguments, and a file that lies would
    # otherwise read memory outside the storage (torch.load refuses such files too).
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise TorchFileError(f"a tensor's layout is invalid: offset {offset}, size {size}, stride {stride}")
    if 0 in size:
        return np.zeros(size, arr.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= arr.size:
        raise TorchFileError(f"a tensor of size {size}, stride {stride} at offset {offset} reaches element {last} "
                             f"of a storage of {arr.size}: the file is damaged")
    if not size:
        return arr[offset].copy()
    itemsize = arr.itemsize
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *rest):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf: zipfile.ZipFile, prefix: str):
        super().__init__(fh)
        self.zf, self.prefix = zf, prefix
        self.cache: Dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
            return _DType(name)
        if module == "builtins" and name in ("set", "frozenset", "tuple", "list", "dict", "int", "float", "str", "bytes", "slice"):
            import builtins
            return getattr(builtins, name)
        if module == "torch.nn.modules.module" or module.startswith("__main__") or module.startswith("torch.nn"):
            raise TorchFileError(f"the file holds a pickled {module}.{name} object, not a state dict: "
                                 "save `model.state_dict()` (torch.save(model.state_dict(), path)) and convert that")
        raise TorchFileError(f"the file refers to {module}.{name}; only state dicts of tensors are read "
                             "(torch.save(model.state_dict(), path))")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchFileError(f"unknown persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        if isinstance(stype, _DType):  # newer files name the dtype, with an untyped storage
            dname = stype.name
            dtype = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": "bf16", "int64": np.int64,
                     "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}[dname]
        elif isinstance(stype, _StorageType):
            dtype = _STORAGE_DTYPES[stype.name]
        else:
            raise TorchFileError(f"unknown storage type {stype!r}")
        if key not in self.cache:
            raw = self.zf.read(f"{self.prefix}data/{key}")
            if dtype == "bf16":
                self.cache[key] = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                self.cache[key] = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype)
        return self.cache[key]


def load_torch_file(path: str) -> Any:
    """The object in a torch.save zip file, with tensors as numpy arrays."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise TorchFileError(f"{path}: not a zip-format torch.save file (legacy format? re-save with torch >= 1.6: "
                             "torch.save(model.state_dict(), path))") from None
    with zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise TorchFileError(f"{path}: no data.pkl in the archive (a TorchScript file? save a state_dict instead)")
        prefix = pkl[0][: -len("data.pkl")]
        order = prefix + "byteorder"
        if order in zf.namelist() and zf.read(order).strip() not in (b"little", b""):
            raise TorchFileError(f"{path}: big-endian tensors are not supported")
        return _Unpickler(io.BytesIO(zf.read(pkl[0])), zf, prefix).load()


def flatten(obj: Any, prefix: str = "") -> "collections.OrderedDict[str, np.ndarray]":
    """Dotted names → arrays of every tensor in nested dicts (a state dict, or a checkpoint
    holding one), in insertion order."""
    out: "collections.OrderedDict[str, np.ndarray]" = collections.OrderedDict()
    if isinstance(obj, np.ndarray):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    return out
