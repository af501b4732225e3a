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
