"""Silver data through Hugging Face ``datasets``: Arrow on disk, memory-mapped, never all in Python lists.

``silver_windows`` is what distillation calls:

1. every ``data.silver`` entry is opened with ``datasets.load_dataset``: a local file or folder of
   Parquet parts (``training label``) as ``load_dataset("parquet", data_files=[...])``; anything
   else (a hub id ``owner/name``, or a local dataset folder in the hub's layout) as
   ``load_dataset(name, split="train")``. The teacher's label names come from the Parquet schema
   metadata ``labels`` and must cover the student's labels; the columns of ``probs`` are put in the
   student's order and renormalised per word (``training.silver.student_probs``);
2. ``max_docs`` > 0 takes a seeded random sample (``shuffle(seed).select(range(n))``), not the first N;
3. one batched ``Dataset.map`` turns documents into training windows with
   ``training.examples.silver_examples`` (the one windowing/alignment code path), written to
   ``<cache_dir>/windows/<fingerprint>.arrow``. The fingerprint hashes the sampled data, the
   tokenizer's full serialisation, max_length, stride, labels, casing and the source of the
   windowing code, so a second run with the same settings reads the cached Arrow file instead of
   tokenising again;
4. the loop gets ``ArrowWindows``, a read-only sequence of ``Example`` read row by row from that
   memory-mapped file.
"""
from __future__ import annotations

import bisect
import hashlib
import inspect
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pyarrow.parquet as pq

from training.augment import CaseAugment
from training.examples import Example, silver_examples
from training.silver import label_order, silver_files, student_probs

NEEDED = ("text", "word_start", "probs")
HOW_TO = ("Expected Parquet parts written by `python -m training label` (columns text, word_start, "
          "word_end, probs; label names in the schema metadata `labels`)")


class SilverLoadError(ValueError):
    pass


def _is_parts(source: str) -> bool:
    """A local Parquet file, or a local folder holding ``part-*.parquet`` (or ``silver/part-*.parquet``).

    Anything else, a local folder in the hub's dataset layout included, goes to ``load_dataset(name)``.
    """
    p = Path(source)
    return p.is_file() or (p.is_dir() and bool(list(p.glob("silver/part-*.parquet")) or list(p.glob("part-*.parquet"))))


def _parquet_labels(f, where: str) -> list[str]:
    meta = pq.read_schema(f).metadata or {}
    if b"labels" not in meta:
        raise SilverLoadError(f"{where}: no `labels` entry in the Parquet schema metadata (found keys "
                              f"{sorted(k.decode() for k in meta)}). {HOW_TO}.")
    return json.loads(meta[b"labels"])


def _check_columns(ds, where: str) -> None:
    missing = [c for c in NEEDED if c not in ds.column_names]
    if missing:
        raise SilverLoadError(f"{where}: columns {missing} missing (found {ds.column_names}). {HOW_TO}.")


def _local_groups(source: str, cache_dir: str) -> list[tuple[list[str], object]]:
    """A local file/folder of parts -> [(teacher labels, Dataset)], one Dataset per distinct label list."""
    import datasets

    by_labels: dict[tuple, list[str]] = {}
    for f in silver_files([source]):
        by_labels.setdefault(tuple(_parquet_labels(f, str(f))), []).append(str(f))
    out = []
    for theirs, files in by_labels.items():
        ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
        _check_columns(ds, source)
        out.append((list(theirs), ds))
    return out


def _hub_labels(name: str, cache_dir: str) -> list[str]:
    """Label names from the schema metadata of the dataset's Parquet data files (local or hf://)."""
    import datasets
    import fsspec

    builder = datasets.load_dataset_builder(name, cache_dir=cache_dir)
    files = (builder.config.data_files or {}).get("train") or []
    if not files:
        raise SilverLoadError(f"data.silver: dataset {name!r} has no train split data files "
                              f"(found splits {sorted(builder.config.data_files or {})}). {HOW_TO}.")
    found = set()
    for f in files:
        if not str(f).endswith(".parquet"):
            raise SilverLoadError(f"data.silver: dataset {name!r} file {f} is not Parquet. {HOW_TO}.")
        with fsspec.open(str(f), "rb") as fh:
            found.add(tuple(_parquet_labels(fh, f"{name}: {f}")))
    if len(found) > 1:
        raise SilverLoadError(f"data.silver: the parts of dataset {name!r} disagree on their labels: "
                              f"{sorted(found)}. Label every part with the same teacher.")
    return list(found.pop())


def _named_group(name: str, cache_dir: str) -> tuple[list[str], object]:
    """A hub id (or a local dataset folder in the hub's layout) through ``datasets.load_dataset(name)``."""
    import datasets

    try:
        theirs = _hub_labels(name, cache_dir)
        ds = datasets.load_dataset(name, split="train", cache_dir=cache_dir)
    except SilverLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "could not load"
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        raise SilverLoadError(
            f"data.silver: {name!r} is not a local path, and `datasets.load_dataset({name!r})` failed: "
            f"{type(exc).__name__}: {exc}. Expected a local file/folder of Parquet parts from "
            f"`python -m training label`, or a Hugging Face dataset id owner/name whose train split is such "
            f"Parquet parts{' (offline mode is on: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE=1)' if offline else ''}. "
            "Fix the path, or check the dataset id and network access.") from exc
    _check_columns(ds, name)
    return theirs, ds


def open_silver(sources: Sequence[str], labels: Sequence[str], cache_dir: str, data_root: str = "../shared/data"):
    """All silver documents as one Dataset (text, word_start, probs, label_set) and, per label_set,
    (number of teacher labels, column order giving the student's labels). A kept set (a folder with
    manifest.json, training/silver_store.py) is checked against its sources and joined to their text."""
    import datasets

    from training.silver_store import is_kept, unpack

    parts, label_sets, base = [], [], None
    for source in map(str, sources):
        if is_kept(source):
            groups = [g for f in unpack(source, data_root, cache_dir) for g in _local_groups(f, cache_dir)]
        elif _is_parts(source):
            groups = _local_groups(source, cache_dir)
        else:
            groups = [_named_group(source, cache_dir)]
        for theirs, ds in groups:
            order = label_order(theirs, labels, source)
            key = (len(theirs), tuple(order))
            if key not in label_sets:
                label_sets.append(key)
            ds = ds.select_columns(list(NEEDED))
            if base is None:
                base = ds.features
            elif ds.features != base:  # e.g. probs stored as float32 in another source
                ds = ds.cast(base)
            parts.append(ds.add_column("label_set", [label_sets.index(key)] * len(ds)))
    raw = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return raw, label_sets


def sample_docs(raw, max_docs: int, seed: int):
    """All documents in file order, or a seeded random sample of ``max_docs`` of them."""
    if not max_docs or max_docs >= len(raw):
        return raw
    return raw.shuffle(seed=seed, keep_in_memory=True).select(range(max_docs))


def tokenizer_hash(tokenizer) -> str:
    """Identity of a tokenizer by its full serialisation (vocab, normaliser, pre-tokeniser, added tokens)."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # truncation/padding are call-time state (encode() clears them): not identity
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        h.update(repr(sorted((k, repr(v)) for k, v in getattr(tokenizer, "init_kwargs", {}).items())).encode())
    return h.hexdigest()


def _code_hash() -> str:
    """The windowing/alignment code: a change to it must not reuse windows made by the old code."""
    import extract.text.casing
    import extract.text.windows
    import training.align
    import training.augment
    import training.examples
    import training.silver

    h = hashlib.sha256()
    for m in (extract.text.windows, extract.text.casing, training.align, training.augment, training.examples,
              training.silver):
        h.update(inspect.getsource(m).encode())
    return h.hexdigest()


def windows_fingerprint(docs, label_sets, labels, tokenizer, max_length: int, stride: int, casing: bool,
                        augment: Optional[CaseAugment] = None) -> str:
    key = {"docs": docs._fingerprint, "n_docs": len(docs), "label_sets": label_sets, "labels": list(labels),
           "tokenizer": tokenizer_hash(tokenizer), "max_length": max_length, "stride": stride,
           "casing": bool(casing), "code": _code_hash(), "version": 1,
           "augment": None if augment is None or augment.share <= 0 else
           [augment.share, list(augment.modes), augment.seed]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _features():
    from datasets import Features, List, Value

    return Features({"ids": List(Value("int32")), "casing": List(Value("int8")), "labels": List(Value("int32")),
                     "soft": List(Value("float32")), "soft_mask": List(Value("bool"))})


def _window_maker(label_sets, tokenizer, max_length: int, stride: int, calls: list,
                  augment: Optional[CaseAugment] = None) -> Callable[[dict], dict]:
    def make(batch: dict) -> dict:
        calls[0] += 1
        starts, probs = [], []
        for w_starts, flat, which in zip(batch["word_start"], batch["probs"], batch["label_set"]):
            n_theirs, order = label_sets[which]
            starts.append(np.asarray(w_starts, dtype=np.int64))
            probs.append(student_probs(flat, len(w_starts), n_theirs, order))
        exs = silver_examples(batch["text"], starts, probs, tokenizer, max_length, stride, augment)
        return {"ids": [e.ids.astype(np.int32) for e in exs], "casing": [e.casing.astype(np.int8) for e in exs],
                "labels": [e.labels.astype(np.int32) for e in exs],
                "soft": [e.soft.reshape(-1) for e in exs], "soft_mask": [e.soft_mask for e in exs]}
    return make


class _Indexed(Sequence):
    """Python sequence indexing (negative indices, slices, IndexError) over ``_at(0 <= i < len)``."""

    def _at(self, i: int) -> Example:
        raise NotImplementedError

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._at(i)


class ArrowWindows(_Indexed):
    """Training windows read on demand from a memory-mapped Arrow dataset, as ``Example`` objects."""

    def __init__(self, dataset, n_labels: int, cache_hit: Optional[bool] = None):
        self.dataset = dataset
        self.n_labels = n_labels
        self.cache_hit = cache_hit
        self._rows = dataset.with_format("numpy")

    def __len__(self) -> int:
        return len(self.dataset)

    def _example(self, row: dict) -> Example:
        return Example(np.asarray(row["ids"], dtype=np.int64), np.asarray(row["casing"], dtype=np.int64),
                       np.asarray(row["labels"], dtype=np.int64),
                       np.asarray(row["soft"], dtype=np.float32).reshape(-1, self.n_labels),
                       np.asarray(row["soft_mask"], dtype=bool))

    def _at(self, i: int) -> Example:
        return self._example(self._rows[i])

    def __iter__(self) -> Iterator[Example]:
        for batch in self._rows.iter(batch_size=512):
            for j in range(len(batch["ids"])):
                yield self._example({k: v[j] for k, v in batch.items()})


class Examples(_Indexed):
    """Gold lists and Arrow-backed silver windows in one indexable sequence (what ``fit`` batches)."""

    def __init__(self, first: Sequence[Example] = ()):
        self.parts: list[Sequence[Example]] = []
        self._ends: list[int] = []
        self += first

    def __iadd__(self, part: Sequence[Example]) -> "Examples":
        if len(part):
            self.parts.append(part)
            self._ends.append(len(self) + len(part))
        return self

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _at(self, i: int) -> Example:
        p = bisect.bisect_right(self._ends, i)
        return self.parts[p][i - (self._ends[p - 1] if p else 0)]

    def __iter__(self) -> Iterator[Example]:
        for part in self.parts:
            yield from part


def silver_windows(sources: Sequence[str], labels: Sequence[str], tokenizer, max_length: int, stride: int,
                   casing: bool, max_docs: int, seed: int, cache_dir: str,
                   log: Callable[[str], None] = lambda s: print(s, flush=True),
                   augment: Optional[CaseAugment] = None, data_root: str = "../shared/data") -> ArrowWindows:
    """``data.silver`` -> cached Arrow training windows (see the module docstring)."""
    t0 = time.time()
    cache_dir = str(Path(cache_dir))
    Path(cache_dir, "windows").mkdir(parents=True, exist_ok=True)
    raw, label_sets = open_silver(sources, labels, cache_dir, data_root)
    docs = sample_docs(raw, max_docs, seed)
    fp = windows_fingerprint(docs, label_sets, labels, tokenizer, max_length, stride, casing, augment)
    calls = [0]
    windows = docs.map(_window_maker(label_sets, tokenizer, max_length, stride, calls, augment), batched=True,
                       batch_size=64, remove_columns=docs.column_names, features=_features(),
                       new_fingerprint=fp, cache_file_name=str(Path(cache_dir, "windows", f"{fp}.arrow")),
                       load_from_cache_file=True, desc="silver windows")
    hit = calls[0] == 0 and len(docs) > 0
    log(f"silver: {len(docs)} docs sampled of {len(raw)}, {len(windows)} windows "
        f"(cache {'hit' if hit else 'miss'}, {time.time() - t0:.1f}s; {cache_dir})")
    return ArrowWindows(windows, len(labels), cache_hit=hit)
