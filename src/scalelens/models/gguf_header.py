"""The key-value metadata of a GGUF file, read from its header alone.

gguf's `GGUFReader` maps every tensor and builds a field object per array element: 15-20 s for
the packaged Gemma 3 (a 262,144-piece vocabulary) or Qwen2.5-Coder 1.5B files. The header is all
that the registry checks and the tokenizer rebuild need, and it reads in well under a second.

Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor count, u64 key-value
count, then per pair: a string key (u64 length + UTF-8 bytes), a u32 value type and the value.
An array is a u32 element type, a u64 length and the elements. Tensor infos follow; they are
not read.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

GGUF_MAGIC = b"GGUF"

# value types of the GGUF specification
GGUF_UINT8 = 0
GGUF_INT8 = 1
GGUF_UINT16 = 2
GGUF_INT16 = 3
GGUF_UINT32 = 4
GGUF_INT32 = 5
GGUF_FLOAT32 = 6
GGUF_BOOL = 7
GGUF_STRING = 8
GGUF_ARRAY = 9
GGUF_UINT64 = 10
GGUF_INT64 = 11
GGUF_FLOAT64 = 12

_SCALAR = {GGUF_UINT8: "<u1", GGUF_INT8: "<i1", GGUF_UINT16: "<u2", GGUF_INT16: "<i2",
           GGUF_UINT32: "<u4", GGUF_INT32: "<i4", GGUF_FLOAT32: "<f4", GGUF_BOOL: "<u1",
           GGUF_UINT64: "<u8", GGUF_INT64: "<i8", GGUF_FLOAT64: "<f8"}


class GGUFHeaderError(ValueError):
    """Not a GGUF file, or a header that ends early."""


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise GGUFHeaderError(f"{self.path}: the GGUF header ends early (truncated file?)")
        view = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += n
        return view

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u64())).decode("utf-8")

    def value(self, kind: int):
        if kind == GGUF_STRING:
            return self.string()
        if kind == GGUF_ARRAY:
            inner, n = self.u32(), self.u64()
            if inner == GGUF_STRING:
                return [self.string() for _ in range(n)]
            if inner == GGUF_ARRAY:
                return [self.value(GGUF_ARRAY) for _ in range(n)]
            dtype = self._dtype(inner)
            values = np.frombuffer(self.take(n * dtype.itemsize), dtype=dtype)
            return [bool(v) for v in values] if inner == GGUF_BOOL else values.tolist()
        dtype = self._dtype(kind)
        value = np.frombuffer(self.take(dtype.itemsize), dtype=dtype)[0].item()
        return bool(value) if kind == GGUF_BOOL else value

    def _dtype(self, kind: int) -> np.dtype:
        if kind not in _SCALAR:
            raise GGUFHeaderError(f"{self.path}: unknown GGUF value type {kind} at byte "
                                  f"{self.pos}")
        return np.dtype(_SCALAR[kind])


def read_metadata(path: str | Path) -> dict[str, object]:
    """Every key-value pair of a GGUF file's header: scalars as Python numbers or bools,
    strings as str, arrays as lists."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GGUFHeaderError(f"{path}: empty file, not GGUF") from None
        try:
            cur = _Cursor(buf, path)
            if bytes(cur.take(4)) != GGUF_MAGIC:
                raise GGUFHeaderError(f"{path}: not a GGUF file (no GGUF magic)")
            version = cur.u32()
            if version < 2:
                raise GGUFHeaderError(f"{path}: GGUF version {version} is not supported (2 or 3)")
            cur.u64()  # tensor count
            n_kv = cur.u64()
            out: dict[str, object] = {}
            for _ in range(n_kv):
                key = cur.string()
                out[key] = cur.value(cur.u32())
            return out
        finally:
            del cur
            buf.close()
