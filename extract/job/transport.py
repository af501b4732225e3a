"""One shard's payload between pipeline stages as bytes, without pickle.

The payload is made of a few known dataclasses, containers, scalars and numpy arrays. The bytes:

    MAGIC (8) | length of the JSON tree (8, little-endian) | the JSON tree | every array's bytes

The tree holds everything but the arrays; a dataclass names its type from the fixed list below
(decoding can only build those) and an array its dtype, shape and offset in the byte block. Only
numeric and bool dtypes travel. A shard's payload holds thousands of small arrays (a few per
window), so one flat block instead of an ``.npz`` (a zip member each) matters: measured by
scripts/bench_pipeline.py, the zip cost ~0.7 CPU-s a shard of 135k words a round trip.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

MAGIC = b"NERPAY01"
_KINDS = "biufc"  # bool, signed/unsigned ints, floats, complex: fixed-size, no objects


def _types() -> dict[str, type]:
    from extract.model.predict import Windowed
    from extract.job.stages import Payload
    from extract.core.types import Record, Shard
    from extract.text.windows import Encoded

    return {t.__name__: t for t in (Payload, Shard, Record, Windowed, Encoded)}


def dumps(obj: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0  # bytes in chunks so far: the next array's offset
    known = _types()

    def enc(x: Any) -> Any:
        nonlocal size
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in _KINDS:
                raise TypeError(f"cannot send an array of dtype {x.dtype} between stages")
            data = np.ascontiguousarray(x).tobytes()
            chunks.append(data)
            size += len(data)
            return {"a": [x.dtype.str, list(x.shape), size - len(data)]}
        if dataclasses.is_dataclass(x) and type(x).__name__ in known:
            return {"d": type(x).__name__, "f": {f.name: enc(getattr(x, f.name)) for f in dataclasses.fields(x)}}
        if isinstance(x, dict):  # keys may be ints (record indexes): kept as pairs
            return {"m": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            return {"t" if isinstance(x, tuple) else "l": [enc(v) for v in x]}
        if isinstance(x, np.generic):
            return x.item()
        if x is None or isinstance(x, (str, int, float, bool)):
            return x
        raise TypeError(f"cannot send {type(x).__name__} between stages")

    tree = json.dumps(enc(obj), separators=(",", ":")).encode("utf-8")
    return b"".join([MAGIC, len(tree).to_bytes(8, "little"), tree, *chunks])


def loads(data: bytes) -> Any:
    if data[:8] != MAGIC or len(data) < 16:
        raise ValueError("not a stage payload (bad header)")
    known = _types()
    n = int.from_bytes(data[8:16], "little")
    tree = json.loads(data[16:16 + n].decode("utf-8"))
    block = bytearray(data[16 + n:])  # one copy: the arrays are writable views of it

    def dec(x: Any) -> Any:
        if not isinstance(x, dict):
            return x
        if "a" in x:
            dtype, shape, offset = x["a"]
            dt = np.dtype(dtype)
            if dt.kind not in _KINDS:
                raise ValueError(f"not a stage payload (array dtype {dtype})")
            count = int(np.prod(shape, dtype=np.int64))
            return np.frombuffer(block, dt, count, offset).reshape(shape)
        if "d" in x:
            return known[x["d"]](**{k: dec(v) for k, v in x["f"].items()})
        if "m" in x:
            return {dec(k): dec(v) for k, v in x["m"]}
        if "t" in x:
            return tuple(dec(v) for v in x["t"])
        return [dec(v) for v in x["l"]]

    return dec(tree)
