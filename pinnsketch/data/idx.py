"""The IDX format of MNIST and Fashion-MNIST: read and write, strictly validated.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00                       magic
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d >= 1
    4 d bytes   the d sizes, unsigned 32-bit
    the data    prod(sizes) elements, row-major

A path ending in ``.gz`` is read and written through gzip. Any deviation (bad magic, unknown
type code, a header or data shorter than declared, trailing bytes) raises ``ValueError``
naming the file and what is wrong: a damaged download must never be read as data.

Reference: Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits"
(the file-format section).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte"
>>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
>>> read_idx(path).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx", "read_bytes", "encode_idx", "write_idx"]

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX element-type code -> big-endian numpy dtype."""

_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def read_bytes(path: str | Path) -> bytes:
    """The content of ``path``, decompressed with gzip if its name ends in ``.gz``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a ``.gz`` file that is not valid gzip (or is truncated).
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid gzip file ({exc}); the file is "
                         "damaged: delete it and fetch it again") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file into a native-endian numpy array.

    Args:
        data: the whole (uncompressed) file.
        source: a name for error messages (the path).

    Returns:
        A writable array of the declared shape and type (native byte order).

    Raises:
        ValueError: bad magic, unknown type code, zero dimensions, truncated header or data,
            or trailing bytes after the data.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])).tolist()
    [7, 9]
    >>> parse_idx(bytes([1, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    Traceback (most recent call last):
    ...
    ValueError: '<bytes>' is not an IDX file: bad magic 0x0100 (the first two bytes must be 0)
    """
    if len(data) < 4:
        raise ValueError(f"{source!r} is truncated: {len(data)} bytes, shorter than the 4-byte "
                         "IDX magic number")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{source!r} is not an IDX file: bad magic 0x{data[0]:02x}{data[1]:02x} "
                         "(the first two bytes must be 0)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{source!r}: unknown IDX element type 0x{code:02x}; valid: "
                         + ", ".join(f"0x{c:02x}" for c in IDX_DTYPES))
    if ndim == 0:
        raise ValueError(f"{source!r}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source!r} is truncated: the header declares {ndim} dimensions "
                         f"({header} bytes) but the file has {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise ValueError(f"{source!r} is truncated: shape {shape} needs {expected} data bytes, "
                         f"found {got}")
    if got > expected:
        raise ValueError(f"{source!r} has {got - expected} unexpected trailing bytes after "
                         f"the data of shape {shape}")
    arr = np.frombuffer(data, dtype=dtype, offset=header, count=expected // dtype.itemsize)
    return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip if the name ends in ``.gz``); see :func:`parse_idx`."""
    return parse_idx(read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (a dtype of :data:`IDX_DTYPES`, at least 1-D).

    Raises:
        ValueError: unsupported dtype, a 0-d array, or a size that does not fit 32 bits.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, "
                         "int16, int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(s >= 2**32 for s in array.shape):
        raise ValueError(f"IDX sizes must fit 32 bits, got shape {array.shape}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip if the name ends in ``.gz``), atomically.

    The bytes go to a temporary name in the same directory, then are renamed onto ``path``.
    """
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
