"""A small, self-contained GGUF v3 writer and an independent reader (no gguf-py).

File layout (all little-endian):
    magic "GGUF" | u32 version=3 | u64 tensor_count | u64 kv_count
    kv_count x  { string key | u32 value_type | value }
    tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
    zero padding up to a multiple of general.alignment
    tensor data; each tensor starts at data_start + offset, offset a multiple of the alignment
string = u64 byte length + UTF-8 bytes (no NUL). array = u32 element type + u64 count + elements.
ne[0] is the innermost (contiguous) dimension: a row-major numpy array of shape (a, b) has ne=[b, a].
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3

# gguf value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
               BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
_NP_OF = {U8: np.uint8, I8: np.int8, U16: np.uint16, I16: np.int16, U32: np.uint32,
          I32: np.int32, F32: np.float32, U64: np.uint64, I64: np.int64, F64: np.float64}

GGML_TYPE_F32 = 0


class Typed:
    """A value with an explicit gguf type: Typed(U32, 5), Typed(ARRAY, [..], elem=F32)."""

    def __init__(self, vtype: int, value: Any, elem: int | None = None):
        self.vtype, self.value, self.elem = vtype, value, elem


def _pack_string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _pack_value(vtype: int, value: Any, elem: int | None) -> bytes:
    if vtype == STRING:
        return _pack_string(value)
    if vtype == ARRAY:
        assert elem is not None and elem != ARRAY
        out = [struct.pack("<IQ", elem, len(value))]
        if elem == STRING:
            out += [_pack_string(v) for v in value]
        else:
            out.append(np.asarray(value, dtype=np.dtype(_NP_OF[elem]).newbyteorder("<")).tobytes()
                       if elem != BOOL else bytes(bool(v) for v in value))
        return b"".join(out)
    return struct.pack(_SCALAR_FMT[vtype], value)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def write_gguf(path: str, kvs: list[tuple[str, Typed]], tensors: list[tuple[str, np.ndarray]],
               alignment: int = 32) -> int:
    """Writes an all-F32 GGUF v3 file. `tensors` are numpy arrays in row-major order; their gguf
    ne[] is the reversed numpy shape. Returns the file size."""
    keys = [k for k, _ in kvs]
    assert len(set(keys)) == len(keys), "duplicate metadata key"
    names = [n for n, _ in tensors]
    assert len(set(names)) == len(names), "duplicate tensor name"
    head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs))]
    for k, tv in kvs:
        head.append(_pack_string(k) + struct.pack("<I", tv.vtype) + _pack_value(tv.vtype, tv.value, tv.elem))
    offset = 0
    blobs = []
    for name, arr in tensors:
        a = np.ascontiguousarray(arr, dtype=np.dtype("<f4"))
        ne = list(reversed(a.shape))
        head.append(_pack_string(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
                    + struct.pack("<IQ", GGML_TYPE_F32, offset))
        blobs.append((offset, a.tobytes()))
        offset = _align(offset + a.nbytes, alignment)
    header = b"".join(head)
    data_start = _align(len(header), alignment)
    with open(path, "wb") as f:
        f.write(header)
        f.write(b"\0" * (data_start - len(header)))
        pos = 0
        for off, blob in blobs:
            f.write(b"\0" * (off - pos))
            f.write(blob)
            pos = off + len(blob)
        f.write(b"\0" * (offset - pos))  # pad the last tensor too, as gguf-py does
        return f.tell()


# ------------------------------------------------------------------------------ reader
# Written independently of the writer above: a cursor over the raw bytes with bounds checks.

_GGML_TYPE_SIZE = {0: (1, 4), 1: (1, 2), 8: (32, 34), 2: (32, 18), 30: (1, 2)}  # type: (block elems, block bytes)


class GGUFError(ValueError):
    pass


class _Cursor:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"read of {n} bytes at {self.pos} past end ({len(self.buf)})")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        n = self.u64()
        return self.take(n).decode("utf-8")

    def scalar(self, t: int):
        fmt = _SCALAR_FMT.get(t)
        if fmt is None:
            raise GGUFError(f"bad scalar type {t} at {self.pos}")
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, t: int):
        if t == STRING:
            return self.string()
        if t == ARRAY:
            et, n = self.u32(), self.u64()
            if et == STRING:
                return [self.string() for _ in range(n)]
            if et == ARRAY:
                return [self.value(ARRAY) for _ in range(n)]
            if et == BOOL:
                return [bool(x) for x in self.take(n)]
            dt = np.dtype(_NP_OF[et]).newbyteorder("<")
            return np.frombuffer(self.take(n * dt.itemsize), dtype=dt).copy()
        return self.scalar(t)


def read_gguf(path: str):
    """Returns (kv: dict, kv_types: dict, tensors: dict name -> (np.ndarray or raw bytes, ne, type)).
    F32 tensors come back as numpy arrays of shape reversed(ne)."""
    with open(path, "rb") as f:
        buf = f.read()
    c = _Cursor(buf)
    if c.take(4) != GGUF_MAGIC:
        raise GGUFError("bad magic")
    version = c.u32()
    if version not in (2, 3):
        raise GGUFError(f"unsupported version {version}")
    n_tensors, n_kv = c.u64(), c.u64()
    kv, kv_types = {}, {}
    for _ in range(n_kv):
        k = c.string()
        t = c.u32()
        if k in kv:
            raise GGUFError(f"duplicate key {k}")
        kv[k] = c.value(t)
        kv_types[k] = t
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        nd = c.u32()
        if nd > 4:
            raise GGUFError(f"{name}: n_dims {nd}")
        ne = [c.u64() for _ in range(nd)]
        t = c.u32()
        off = c.u64()
        infos.append((name, ne, t, off))
    data_start = _align(c.pos, align)
    tensors = {}
    for name, ne, t, off in infos:
        if off % align:
            raise GGUFError(f"{name}: misaligned offset {off}")
        if t not in _GGML_TYPE_SIZE:
            raise GGUFError(f"{name}: unknown type {t}")
        blk, bsz = _GGML_TYPE_SIZE[t]
        n = int(np.prod(ne)) if ne else 1
        if n % blk:
            raise GGUFError(f"{name}: {n} elements not a multiple of block {blk}")
        nbytes = n // blk * bsz
        start = data_start + off
        if start + nbytes > len(buf):
            raise GGUFError(f"{name}: data past end of file")
        raw = buf[start:start + nbytes]
        if t == GGML_TYPE_F32:
            arr = np.frombuffer(raw, dtype="<f4").reshape(list(reversed(ne)))
            tensors[name] = (arr, ne, t)
        else:
            tensors[name] = (raw, ne, t)
    return kv, kv_types, tensors
