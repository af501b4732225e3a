"""Payloads cross pipeline stages without pickle, and come back equal."""
from __future__ import annotations

import numpy as np
import pytest

from extract.job import transport
from extract.model.predict import Windowed
from extract.job.stages import Payload
from extract.core.types import Record, Shard
from extract.text.windows import Encoded


def test_payload_round_trip():
    enc = Encoded(*(np.arange(5, dtype=np.int64) + k for k in range(5)))
    payload = Payload(Shard("00000-00001", "jsonl", "x.jsonl", None, 0, -1, stamps=[[10, 20]]),
                      [Record("a", "Bonn \ufffd", "x.jsonl@0", warning="w"), Record(None, None, "x.jsonl@9", "bad")],
                      {0: Windowed(enc, [(0, 3), (2, 5)], [True, False])},
                      {0: [np.ones((3, 9), np.float32), np.zeros((3, 9), np.float32)], 1: ("text", np.ones(2))},
                      seconds=1.5)
    back = transport.loads(transport.dumps(payload))
    assert back.shard == payload.shard and back.records == payload.records and back.seconds == 1.5
    w = back.features[0]
    assert w.wins == [(0, 3), (2, 5)] and w.keep == [True, False] and np.array_equal(w.enc.casing, enc.casing)
    assert all(np.array_equal(a, b) for a, b in zip(back.results[0], payload.results[0]))
    assert back.results[1][0] == "text" and isinstance(back.results[1], tuple)


def test_unknown_objects_are_refused():
    with pytest.raises(TypeError):
        transport.dumps({"x": object()})


def test_arrays_keep_dtype_shape_and_are_writable():
    arrays = [np.zeros(0, np.int64), np.arange(6, dtype=np.int32).reshape(2, 3), np.array(True),
              np.ones((2, 0, 3), np.float16), np.arange(10, dtype=np.float64)[::3], np.array([1, 2], ">i4")]
    back = transport.loads(transport.dumps(arrays))
    for a, b in zip(arrays, back):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    back[1][0, 0] = 7  # stages may work in place
    assert back[1][0, 0] == 7


def test_object_arrays_and_foreign_bytes_are_refused():
    with pytest.raises(TypeError, match="dtype"):
        transport.dumps([np.array(["a", None], dtype=object)])
    with pytest.raises(ValueError, match="not a stage payload"):
        transport.loads(b"PK\x03\x04 a zip, not a payload")


def _same(a, b) -> bool:
    """Equal values of the same types all the way down (a tuple stays a tuple, an array its dtype)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def _windowed(n: int, keep) -> Windowed:
    return Windowed(Encoded(*(np.arange(n, dtype=np.int64) * (k + 1) for k in range(5))), [(0, n), (n // 2, n)], keep)


def test_sequences_travel_by_column_and_come_back_the_same():
    rng = np.random.default_rng(0)
    payload = Payload(
        Shard("00000-00001", "text", files=["a.txt", "b.txt"], stamps=[[1, 2], [3, 4]]),
        [Record(f"d{i}", None if i % 3 == 0 else f"text {i} \u00e9", f"x@{i}", error=None if i % 2 else "bad",
                status=None if i % 4 else "error") for i in range(7)],
        {0: _windowed(4, None), 1: _windowed(0, np.array([], bool)), 2: _windowed(6, np.array([True, False])),
         5: _windowed(3, [True])},
        {0: [rng.standard_normal((4, 9)).astype(np.float32)], 1: [], 2: [np.zeros((0, 9), np.float32)] * 2,
         5: [np.ones((3, 9), np.float32), np.ones((3, 9), np.float32)[::2]]},
        seconds=0.25)
    extras = {"big-endian": [np.array([1, 2], ">i4"), np.array([3], ">i4")], "mixed": [1, "a", None, 2.5, True],
              "tuples": [(1, 2), (3, 4, 5), ()], "nested": [[[1], []], [[2, 3]]],
              "generic": [np.int64(3), np.float32(1)],
              "scalars0d": [np.array(1.5), np.array(2.5)], "empty": [], "shapes": [np.zeros((2, 3)), np.zeros((2, 4))]}
    back = transport.loads(transport.dumps(payload))
    assert _same(back, payload)
    got = transport.loads(transport.dumps(extras))
    assert _same({k: v for k, v in got.items() if k != "generic"}, {k: v for k, v in extras.items() if k != "generic"})
    assert got["generic"] == [3, 1.0] and [type(v) for v in got["generic"]] == [int, float]
    got["big-endian"][1][0] = 9  # views of one block, still writable, each its own slice
    assert got["big-endian"][0].tolist() == [1, 2] and got["big-endian"][1].tolist() == [9]


def _nodes(tree) -> int:
    if isinstance(tree, dict):
        return 1 + sum(_nodes(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(_nodes(v) for v in tree)
    return 0


def test_a_shard_of_many_records_is_a_few_tree_nodes():
    """One node per item is what made transport cost as much as decoding (transport.py says)."""
    import json

    n = 2000
    payload = Payload(Shard("00000-00001", "jsonl", "x.jsonl"),
                      [Record(f"d{i}", f"text {i}", f"x.jsonl@{i}") for i in range(n)],
                      {i: _windowed(5 + i % 7, None) for i in range(n)},
                      {i: [np.ones((5 + i % 7, 9), np.float32)] for i in range(n)})
    blob = transport.dumps(payload)
    size = int.from_bytes(blob[8:16], "little")
    assert _nodes(json.loads(blob[16:16 + size])) < 60
    assert _same(transport.loads(blob), payload)
