"""A small read-only HDF5 reader: enough for the weight files that Keras 3 writes through h5py
(superblock 0/1, version-1 object headers, symbol-table groups, contiguous or compact datasets of
little- or big-endian floats and integers). It lets ``recurd-export`` read ``.keras`` files without
h5py; anything outside that subset raises ``HDF5Unsupported`` (install h5py then).

    tree = read_hdf5(bytes)     # {"layers/lstm/cell/vars/0": ndarray, …}
"""
from __future__ import annotations

import struct
from typing import Dict

import numpy as np

SIGNATURE = b"\x89HDF\r\n\x1a\n"
UNDEFINED = 0xFFFFFFFFFFFFFFFF


class HDF5Unsupported(ValueError):
    pass


class _Reader:
    def __init__(self, data: bytes):
        self.d = data
        base = data.find(SIGNATURE)
        if base < 0 or base % 512:
            raise HDF5Unsupported("not an HDF5 file (no signature)")
        p = base + 8
        version = data[p]
        if version not in (0, 1):
            raise HDF5Unsupported(f"HDF5 superblock version {version} (this reader handles 0 and 1; install h5py)")
        self.so, self.sl = data[p + 5], data[p + 6]
        if self.so != 8 or self.sl != 8:
            raise HDF5Unsupported("HDF5 offsets/lengths other than 8 bytes")
        p += 8 + 4 + 4  # versions(4) sizes(2) reserved(1)+? : version, fs ver, root ver, res, shared ver, so, sl, res
        if version == 1:
            p += 4
        self.base = struct.unpack_from("<Q", data, p)[0] + 0
        p += 8 * 4  # base, free-space, EOF, driver
        # root group symbol table entry
        self.root_header = struct.unpack_from("<Q", data, p + 8)[0]
        self.base = base if self.base == 0 else self.base

    def u(self, off: int, size: int) -> int:
        return int.from_bytes(self.d[off:off + size], "little")

    def messages(self, addr: int):
        """Yields (type, data bytes) of a version-1 object header, following continuations."""
        d = self.d
        a = self.base + addr
        if d[a:a + 4] == b"OHDR":
            raise HDF5Unsupported("version-2 object headers (file written with libver='latest'; install h5py)")
        if d[a] != 1:
            raise HDF5Unsupported(f"object header version {d[a]} at {addr}")
        count = struct.unpack_from("<H", d, a + 2)[0]
        size = struct.unpack_from("<I", d, a + 8)[0]
        blocks = [(a + 16, size)]
        seen = 0
        while blocks and seen < count:
            start, length = blocks.pop(0)
            p, end = start, start + length
            while p + 8 <= end and seen < count:
                mtype, msize, _flags = struct.unpack_from("<HHB", d, p)
                body = d[p + 8:p + 8 + msize]
                seen += 1
                if mtype == 0x10:  # continuation
                    off, ln = struct.unpack_from("<QQ", body)
                    blocks.append((self.base + off, ln))
                else:
                    yield mtype, body
                p += 8 + msize

    def heap_string(self, heap_data: int, offset: int) -> str:
        a = self.base + heap_data + offset
        e = self.d.index(b"\x00", a)
        return self.d[a:e].decode("utf-8")

    def group(self, addr: int) -> Dict[str, int]:
        """{name: object header address} of a symbol-table group."""
        btree = heap = None
        for mtype, body in self.messages(addr):
            if mtype == 0x11:
                btree, heap = struct.unpack_from("<QQ", body)
            elif mtype in (0x02, 0x06):
                raise HDF5Unsupported("new-style (link message) groups; install h5py")
        if btree is None:
            return {}
        h = self.base + heap
        if self.d[h:h + 4] != b"HEAP":
            raise HDF5Unsupported("bad local heap")
        heap_data = struct.unpack_from("<Q", self.d, h + 24)[0]
        out: Dict[str, int] = {}
        self._btree(btree, heap_data, out)
        return out

    def _btree(self, addr: int, heap_data: int, out: Dict[str, int]) -> None:
        a = self.base + addr
        d = self.d
        if d[a:a + 4] != b"TREE":
            raise HDF5Unsupported("bad B-tree node")
        node_type, level, used = d[a + 4], d[a + 5], struct.unpack_from("<H", d, a + 6)[0]
        if node_type != 0:
            raise HDF5Unsupported("unexpected B-tree type")
        p = a + 8 + 16 + 8  # signature/type/level/used, siblings, first key
        for _ in range(used):
            child = struct.unpack_from("<Q", d, p)[0]
            p += 16  # child + next key
            if level > 0:
                self._btree(child, heap_data, out)
            else:
                s = self.base + child
                if d[s:s + 4] != b"SNOD":
                    raise HDF5Unsupported("bad symbol table node")
                n = struct.unpack_from("<H", d, s + 6)[0]
                for i in range(n):
                    e = s + 8 + 40 * i
                    name_off, header = struct.unpack_from("<QQ", d, e)
                    out[self.heap_string(heap_data, name_off)] = header

    def dataset(self, addr: int):
        """The array of a dataset, or None if the object is not a dataset."""
        shape = dtype = layout = None
        for mtype, body in self.messages(addr):
            if mtype == 0x01:
                shape = self._dataspace(body)
            elif mtype == 0x03:
                dtype = self._datatype(body)
            elif mtype == 0x08:
                layout = body
            elif mtype == 0x0B:
                raise HDF5Unsupported("filtered (compressed) datasets; install h5py")
        if layout is None:
            return None
        if shape is None or dtype is None:
            raise HDF5Unsupported("dataset without dataspace or datatype")
        count = int(np.prod(shape)) if shape else 1
        nbytes = count * dtype.itemsize
        version = layout[0]
        if version == 3:
            cls = layout[1]
            if cls == 0:
                size = struct.unpack_from("<H", layout, 2)[0]
                raw = layout[4:4 + size]
            elif cls == 1:
                address, size = struct.unpack_from("<QQ", layout, 2)
                raw = b"\x00" * nbytes if address == UNDEFINED else self.d[self.base + address:self.base + address + size]
            else:
                raise HDF5Unsupported("chunked datasets; install h5py")
        elif version in (1, 2):
            rank, cls = layout[1], layout[2]
            p = 8
            if cls == 0:
                p += 4 * rank
                size = struct.unpack_from("<I", layout, p)[0]
                raw = layout[p + 4:p + 4 + size]
            elif cls == 1:
                address = struct.unpack_from("<Q", layout, p)[0]
                raw = b"\x00" * nbytes if address == UNDEFINED else self.d[self.base + address:self.base + address + nbytes]
            else:
                raise HDF5Unsupported("chunked datasets; install h5py")
        else:
            raise HDF5Unsupported(f"data layout message version {version}")
        if len(raw) < nbytes:
            raise HDF5Unsupported("dataset data is truncated")
        return np.frombuffer(raw[:nbytes], dtype).reshape(shape).astype(dtype.newbyteorder("="))

    @staticmethod
    def _dataspace(b: bytes):
        version, rank = b[0], b[1]
        p = 8 if version == 1 else 4
        if version == 2 and b[3] == 0:
            return ()
        return tuple(struct.unpack_from("<Q", b, p + 8 * i)[0] for i in range(rank))

    @staticmethod
    def _datatype(b: bytes) -> np.dtype:
        cls = b[0] & 0x0F
        bits0 = b[1]
        size = struct.unpack_from("<I", b, 4)[0]
        order = ">" if bits0 & 1 else "<"
        if cls == 1 and size in (2, 4, 8):
            return np.dtype(f"{order}f{size}")
        if cls == 0 and size in (1, 2, 4, 8):
            signed = bool(bits0 & 0x08)
            return np.dtype(f"{order}{'i' if signed else 'u'}{size}")
        raise HDF5Unsupported(f"HDF5 datatype class {cls} of {size} bytes")

    def walk(self, addr: int, prefix: str, out: Dict[str, np.ndarray], depth: int = 0) -> None:
        if depth > 32:
            raise HDF5Unsupported("groups nested too deeply")
        is_group = any(t == 0x11 for t, _ in self.messages(addr))
        if is_group:
            for name, child in self.group(addr).items():
                self.walk(child, f"{prefix}/{name}" if prefix else name, out, depth + 1)
        else:
            a = self.dataset(addr)
            if a is not None:
                out[prefix] = a


def read_hdf5(data: bytes) -> Dict[str, np.ndarray]:
    """{path: array} of every dataset in an HDF5 file's bytes."""
    r = _Reader(data)
    out: Dict[str, np.ndarray] = {}
    try:
        r.walk(r.root_header, "", out)
    except (struct.error, IndexError, ValueError) as e:
        if isinstance(e, HDF5Unsupported):
            raise
        raise HDF5Unsupported(f"cannot parse this HDF5 file ({e}); install h5py") from None
    return out


def read_hdf5_any(data: bytes) -> Dict[str, np.ndarray]:
    """``read_hdf5``, or h5py when it is installed and the built-in reader cannot read the file."""
    try:
        return read_hdf5(data)
    except HDF5Unsupported:
        try:
            import h5py  # noqa
        except ImportError:
            raise
        import io
        out: Dict[str, np.ndarray] = {}
        with h5py.File(io.BytesIO(data), "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
        return out
