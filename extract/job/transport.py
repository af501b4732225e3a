"""One shard's payload between pipeline stages as bytes, without pickle.

The payload is made of a few known dataclasses, containers, scalars and numpy arrays. Arrays go
into an ``.npz`` (``allow_pickle=False``), everything else into a JSON tree stored beside them, in
which a dataclass names its type from the fixed list below: decoding can only build those.
"""
from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np

META = "__tree__"


def _types() -> dict[str, type]:
    from extract.model.predict import Windowed
    from extract.job.stages import Payload
    from extract.core.types import Record, Shard
    from extract.text.windows import Encoded

    return {t.__name__: t for t in (Payload, Shard, Record, Windowed, Encoded)}


def dumps(obj: Any) -> bytes:
    arrays: list[np.ndarray] = []
    known = _types()

    def enc(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            arrays.append(x)
            return {"a": len(arrays) - 1}
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

    tree = json.dumps(enc(obj)).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, **{META: np.frombuffer(tree, dtype=np.uint8)}, **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def loads(data: bytes) -> Any:
    known = _types()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def dec(x: Any) -> Any:
        if not isinstance(x, dict):
            return x
        if "a" in x:
            return arrays[f"a{x['a']}"]
        if "d" in x:
            return known[x["d"]](**{k: dec(v) for k, v in x["f"].items()})
        if "m" in x:
            return {dec(k): dec(v) for k, v in x["m"]}
        if "t" in x:
            return tuple(dec(v) for v in x["t"])
        return [dec(v) for v in x["l"]]

    return dec(json.loads(bytes(arrays.pop(META)).decode("utf-8")))
