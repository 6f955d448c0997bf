"""fsbt.py - read and write fsbench tensor files (.fsbt, version 1; see docs/formats.md).

A tool-side twin of src/tensorfile.c for fixture generators and the torch import/export
scripts: numpy only (torch tensors are accepted on write), XXH3-64 through ctypes from the
system libxxhash (Debian package libxxhash0). Writes are atomic (temporary file + rename).

    meta, tensors = fsbt.read("x.fsbt")          # dict str->str, dict str->np.ndarray (file order)
    fsbt.write("y.fsbt", meta, tensors)          # float32 / int64 arrays, ndim <= 8
"""
import ctypes
import os
import struct
import tempfile

import numpy as np

MAGIC = b"FSBTENS\0"
VERSION = 1
MAXDIM = 8
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<i8")}

_xxh = None


def checksum(data):
    """XXH3-64 (seed 0) of a bytes-like object."""
    global _xxh
    if _xxh is None:
        _xxh = ctypes.CDLL("libxxhash.so.0")
        _xxh.XXH3_64bits.restype = ctypes.c_uint64
        _xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    data = bytes(data)
    return _xxh.XXH3_64bits(data, len(data))


def _as_array(name, value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype == np.float32:
        code = 0
    elif a.dtype == np.int64:
        code = 1
    else:
        raise ValueError(f"tensor '{name}': dtype {a.dtype} is not float32 or int64")
    if a.ndim > MAXDIM:
        raise ValueError(f"tensor '{name}': ndim {a.ndim} > {MAXDIM}")
    return code, np.array(a, dtype=_DTYPES[code], order="C")  # keeps 0-d (ascontiguousarray would not)


def _str(s):
    b = s.encode("utf-8")
    if b"\0" in b:
        raise ValueError(f"string {s!r} contains NUL")
    return struct.pack("<I", len(b)) + b


def encode(meta, tensors):
    """The bytes of a file holding `meta` (str->str) and `tensors` (name->array), in order."""
    parts = [MAGIC, struct.pack("<IIII", VERSION, len(meta), len(tensors), 0)]
    for k, v in meta.items():
        if not k:
            raise ValueError("empty metadata key")
        parts += [_str(str(k)), _str(str(v))]
    for name, value in tensors.items():
        if not name:
            raise ValueError("empty tensor name")
        code, a = _as_array(name, value)
        parts += [_str(name), struct.pack("<II", code, a.ndim)]
        parts += [struct.pack("<Q", d) for d in a.shape]
        parts.append(a.tobytes())
    body = b"".join(parts)
    return body + struct.pack("<Q", checksum(body))


def write(path, meta, tensors):
    """Write atomically to path (a temporary beside it, fsync'd, renamed into place)."""
    data = encode(meta, tensors)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class FormatError(ValueError):
    pass


def decode(data, label="<bytes>"):
    """Parse file bytes -> (meta, tensors); raises FormatError naming `label`."""
    def fail(msg):
        raise FormatError(f"{label}: {msg}")

    if len(data) < 8 or data[:8] != MAGIC:
        fail("not an fsbench tensor file (bad magic)")
    if len(data) < 32:
        fail("truncated")
    version, n_meta, n_tensors, reserved = struct.unpack_from("<IIII", data, 8)
    if version == 0 or version > VERSION:
        fail(f"format version {version} is not supported")
    (want,) = struct.unpack_from("<Q", data, len(data) - 8)
    if checksum(memoryview(data)[: len(data) - 8]) != want:
        fail("checksum mismatch (file corrupt or truncated)")
    if reserved:
        fail("reserved header field is not 0")
    end = len(data) - 8
    pos = 24

    def take(n):
        nonlocal pos
        if n > end - pos:
            fail("truncated record")
        b = data[pos : pos + n]
        pos += n
        return b

    def string():
        (n,) = struct.unpack("<I", take(4))
        return take(n).decode("utf-8")

    meta, tensors = {}, {}
    for _ in range(n_meta):
        k = string()
        if not k or k in meta:
            fail(f"bad or duplicate metadata key {k!r}")
        meta[k] = string()
    for _ in range(n_tensors):
        name = string()
        if not name or name in tensors:
            fail(f"bad or duplicate tensor name {name!r}")
        code, ndim = struct.unpack("<II", take(8))
        if code not in _DTYPES or ndim > MAXDIM:
            fail(f"tensor '{name}': bad dtype {code} or ndim {ndim}")
        shape = struct.unpack(f"<{ndim}Q", take(8 * ndim))
        numel = int(np.prod(shape, dtype=object)) if ndim else 1
        raw = take(numel * _DTYPES[code].itemsize)
        tensors[name] = np.frombuffer(raw, dtype=_DTYPES[code]).reshape(shape).copy()
    if pos != end:
        fail("unexpected bytes after the last tensor")
    return meta, tensors


def read(path):
    """(meta, tensors) of the file at path."""
    with open(path, "rb") as f:
        data = f.read()
    return decode(data, path)
