"""One shard's payload between pipeline stages as bytes, without pickle.

The payload is made of a few known dataclasses, containers, scalars and numpy arrays. The bytes:

    MAGIC (8) | length of the JSON tree (8, little-endian) | the JSON tree | every array's bytes

The tree holds everything but the arrays; a dataclass names its type from the fixed list below
(decoding can only build those) and an array its dtype, shape and offset in the byte block. Only
numeric and bool dtypes travel.

Sequences travel by column: a shard holds thousands of records, windows and logits arrays, and
one tree node (and one Python call each way) per item cost more than the stages' own work on
small records. So a list of same-type dataclasses becomes one column per field, a list of arrays
of one dtype and trailing shape one concatenated array and its lengths, a list of lists one flat
list and its lengths, a list of scalars a plain JSON list. A shard of 1,280 records went from
~31,000 tree nodes to a few dozen (scripts/bench_pipeline.py measures the transport's CPU).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np

MAGIC = b"NERPAY02"
_KINDS = "biufc"  # bool, signed/unsigned ints, floats, complex: fixed-size, no objects
_SCALARS = (str, int, float, bool, type(None))
_ALIGN = 8  # every array starts on an 8-byte boundary of the block: aligned views on decoding


def _types() -> dict[str, type]:
    from extract.model.predict import Windowed
    from extract.job.stages import Payload
    from extract.core.types import Record, Shard
    from extract.text.windows import Encoded

    return {t.__name__: t for t in (Payload, Shard, Record, Windowed, Encoded)}


class _Writer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0  # bytes in chunks so far: the next array's offset
        self.known = _types()

    def array_bytes(self, a: np.ndarray) -> int:
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"cannot send an array of dtype {a.dtype} between stages")
        offset = self.size
        data = np.ascontiguousarray(a).tobytes()
        pad = -len(data) % _ALIGN
        self.chunks.append(data + b"\0" * pad if pad else data)
        self.size += len(data) + pad
        return offset

    def enc(self, x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return {"a": [x.dtype.str, list(x.shape), self.array_bytes(x)]}
        if dataclasses.is_dataclass(x) and type(x).__name__ in self.known:
            return {"d": type(x).__name__, "f": {f.name: self.enc(getattr(x, f.name)) for f in dataclasses.fields(x)}}
        if isinstance(x, dict):  # keys may be ints (record indexes): keys and values as two columns
            return {"m": [self.seq(list(x)), self.seq(list(x.values()))]}
        if isinstance(x, (list, tuple)):
            return {"t" if isinstance(x, tuple) else "l": self.seq(list(x))}
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, _SCALARS):
            return x
        raise TypeError(f"cannot send {type(x).__name__} between stages")

    def seq(self, xs: list) -> Any:
        """A list of items as one node: by column where the items are alike, else item by item."""
        if all(isinstance(x, _SCALARS) for x in xs):
            return {"s": xs}
        first = xs[0]
        kind = type(first)
        if not all(type(x) is kind for x in xs):
            return {"g": [self.enc(x) for x in xs]}
        if kind is np.ndarray and first.ndim >= 1 and first.dtype.kind in _KINDS:
            dt, tail = first.dtype, first.shape[1:]
            if all(x.dtype.str == dt.str and x.shape[1:] == tail for x in xs):
                lengths = [x.shape[0] for x in xs]
                whole = np.concatenate(xs) if len(xs) > 1 else first
                return {"A": [dt.str, list(tail), self.array_bytes(whole), lengths]}
        if dataclasses.is_dataclass(first) and kind.__name__ in self.known:
            return {"D": kind.__name__,
                    "c": {f.name: self.seq([getattr(x, f.name) for x in xs]) for f in dataclasses.fields(first)}}
        if kind in (list, tuple):
            return {"L" if kind is list else "T": [[len(x) for x in xs], self.seq(list(itertools.chain(*xs)))]}
        return {"g": [self.enc(x) for x in xs]}


def dumps(obj: Any) -> bytes:
    w = _Writer()
    tree = json.dumps(w.enc(obj), separators=(",", ":")).encode("utf-8")
    return b"".join([MAGIC, len(tree).to_bytes(8, "little"), tree, *w.chunks])


def _array(block: bytearray, dtype: str, shape: list[int], offset: int) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind not in _KINDS:
        raise ValueError(f"not a stage payload (array dtype {dtype})")
    return np.frombuffer(block, dt, math.prod(shape), offset).reshape(shape)


def _cut(items: list, lengths: list[int]) -> list:
    bounds = list(itertools.accumulate(lengths, initial=0))
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


def loads(data: bytes) -> Any:
    if data[:8] != MAGIC or len(data) < 16:
        raise ValueError("not a stage payload (bad header)")
    known = _types()
    n = int.from_bytes(data[8:16], "little")
    tree = json.loads(data[16:16 + n].decode("utf-8"))
    block = bytearray(memoryview(data)[16 + n:])  # one copy: the arrays are writable views of it

    def dec(x: Any) -> Any:
        if not isinstance(x, dict):
            return x
        if "a" in x:
            return _array(block, *x["a"])
        if "d" in x:
            return known[x["d"]](**{k: dec(v) for k, v in x["f"].items()})
        if "m" in x:
            keys, values = x["m"]
            return dict(zip(seq(keys), seq(values)))
        if "t" in x:
            return tuple(seq(x["t"]))
        return seq(x["l"])

    def seq(x: dict) -> list:
        if "s" in x:
            return x["s"]
        if "g" in x:
            return [dec(v) for v in x["g"]]
        if "A" in x:
            dtype, tail, offset, lengths = x["A"]
            whole = _array(block, dtype, [sum(lengths), *tail], offset)
            return _cut(whole, lengths)  # type: ignore[arg-type]
        if "D" in x:
            cls = known[x["D"]]
            columns = {k: seq(v) for k, v in x["c"].items()}  # every known type has fields
            return [cls(**dict(zip(columns, row))) for row in zip(*columns.values())]
        if "L" in x:
            lengths, flat = x["L"]
            return _cut(seq(flat), lengths)
        if "T" in x:
            lengths, flat = x["T"]
            return [tuple(p) for p in _cut(seq(flat), lengths)]
        raise ValueError("not a stage payload (unknown node)")

    return dec(tree)
