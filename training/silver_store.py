"""Kept silver: a teacher's labels in git, without the corpus text, joined back to the corpus on use.

Labelling a corpus costs hours of 2-core compute; its product must survive the machine. What
``training label`` writes under its output folder (text + fp16 distributions, runs/, not kept) is
packed here into ``<dir>/<name>.parquet`` (one row a document: ``doc_id``, a CRC-32 of the text the
teacher saw, word offsets, and the distributions quantised to 8 bits, zstd) and an entry of
``<dir>/manifest.json`` naming each source file relative to the data root with its sha256, the
input settings that rebuild the text, the teacher and its dev scores, and the command.

Distillation (``data.silver`` naming the folder) verifies every source's sha256, re-reads the text
through the batch job's own readers, checks each document's CRC-32 and writes the old
working form (text + fp16 distributions) into the cache, so everything after is unchanged. A source
that changed is refused with the file named; it is never silently misaligned.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from extract.core.config import to_dict
from extract.core.job_config import InputConfig

MANIFEST = "manifest.json"
FORMAT = 1
KEPT = pa.schema([
    ("doc_id", pa.string()),
    ("text_crc32", pa.uint32()),  # of the UTF-8 text the teacher saw: a changed reader is caught per document
    ("word_start", pa.list_(pa.int32())),
    ("word_end", pa.list_(pa.int32())),
    ("probs", pa.list_(pa.uint8())),  # round(sqrt(p) * 255), n_words * n_labels row-major; renormalised on use
])
# 8 bits a probability on a square-root scale: small probabilities keep ~1e-5 resolution, which the
# temperature-scaled KL (p ** (1/T), T = 2) brings up to weight; a linear scale rounded everything
# under 1/510 to zero (mean KL at T = 2 of 0.0076 nats a word on Reuters, against fp16).
QUANTISATION = "sqrt8"


class SilverSourceError(ValueError):
    """A kept silver set whose source corpus is missing or differs from the one it was labelled on."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: str | Path) -> tuple[str, int]:
    """A file's sha256; a folder's is the sha256 of its files' relative paths and sha256s, sorted."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p), 1
    files = sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(p).as_posix()}\t{sha256_file(f)}\n".encode())
    return h.hexdigest(), len(files)


def crc32(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def quantise(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float32), 0.0, 1.0)
    return np.rint(np.sqrt(p) * 255.0).astype(np.uint8)


def dequantise(q: np.ndarray, scheme: str = QUANTISATION) -> np.ndarray:
    """8-bit codes -> probabilities (not renormalised); ``linear8`` is the first kept format."""
    x = np.asarray(q, dtype=np.float32) / 255.0
    return x if scheme == "linear8" else x * x


def _relative(path: str, root: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(".."):
        raise SilverSourceError(f"silver source {path} is not under the data root {root}; set keep.data_root to a "
                                "folder that holds every input path.")
    return Path(rel).as_posix()


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "sources": []}
    return json.loads(path.read_text(encoding="utf-8"))


def pack(parts: Sequence[str | Path], folder: str, name: str, input_cfg: InputConfig, data_root: str,
         teacher: dict, command: str) -> dict:
    """Working silver parts (``training label``'s silver/part-*.parquet) -> ``folder/name.parquet``
    and its manifest entry (replacing an entry of the same name). Returns the entry."""
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels, rows = None, {f.name: [] for f in KEPT}
    for part in sorted(map(str, parts)):
        t = pq.read_table(part)
        labels = labels or json.loads(t.schema.metadata[b"labels"])
        rows["doc_id"] += t.column("doc_id").to_pylist()
        rows["text_crc32"] += [crc32(x) for x in t.column("text").to_pylist()]
        rows["word_start"] += t.column("word_start").to_pylist()
        rows["word_end"] += t.column("word_end").to_pylist()
        rows["probs"] += [quantise(np.asarray(p, dtype=np.float32)) for p in t.column("probs").to_numpy(False)]
    if labels is None:
        raise SilverSourceError(f"pack: no silver parts to keep (looked at {list(parts)}).")
    order = np.argsort(rows["doc_id"], kind="stable")  # a stable file for the same labels: small git diffs
    table = pa.table({k: [v[i] for i in order] for k, v in rows.items()}, schema=KEPT)
    file = out_dir / f"{name}.parquet"
    tmp = file.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=19, use_dictionary=False,
                   column_encoding={"word_start": "DELTA_BINARY_PACKED", "word_end": "DELTA_BINARY_PACKED"})
    os.replace(tmp, file)
    entry = {"name": name, "labels_file": file.name, "bytes": file.stat().st_size, "docs": len(table),
             "words": int(sum(len(w) for w in rows["word_start"])), "labels": labels,
             "quantisation": QUANTISATION, "read": [_relative(p, data_root) for p in input_cfg.path],
             "sources": source_files(input_cfg.path, data_root),
             "input": {k: v for k, v in to_dict(input_cfg).items() if k != "path"},
             "teacher": teacher, "command": command}
    manifest = read_manifest(out_dir)
    manifest["format"], manifest["data_root"] = FORMAT, data_root
    manifest["sources"] = [s for s in manifest["sources"] if s["name"] != name] + [entry]
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)
    return entry


FILES_LISTED = 100  # a folder of more files is named by one digest of them all (BBC: 2,225 files)


def source_files(paths, data_root: str) -> list[dict]:
    """Each input file with its sha256 (relative to the data root); a folder of more than
    FILES_LISTED files as one entry whose sha256 covers its files' names and contents."""
    out = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files if len(files) <= FILES_LISTED else [p]:
            digest, n = sha256_path(f)
            out.append({"path": _relative(str(f), data_root), "sha256": digest, "files": n})
    return out


def is_kept(source: str) -> bool:
    return (Path(source) / MANIFEST).is_file()


def check_sources(entry: dict, data_root: str, where: str) -> list[str]:
    """The entry's input paths under ``data_root``, every source file verified by sha256 first
    (raises on any difference)."""
    for s in entry["sources"]:
        p = Path(data_root) / s["path"]
        if not p.exists():
            raise SilverSourceError(f"{where}: source {s['path']} of silver '{entry['name']}' not found under "
                                    f"{data_root} (data.silver_root). Point data.silver_root at the folder holding "
                                    "the corpus it was labelled on.")
        digest, n = sha256_path(p)
        if digest != s["sha256"]:
            raise SilverSourceError(
                f"{where}: source {p} of silver '{entry['name']}' has sha256 {digest[:16]}... ({n} file(s)); "
                f"the labels were made on sha256 {s['sha256'][:16]}... ({s['files']} file(s)). The corpus changed: "
                "its word offsets would not line up. Relabel it (`python -m training label` with keep.dir set) "
                "or restore the original files.")
    return [str(Path(data_root) / r) for r in entry.get("read") or [s["path"] for s in entry["sources"]]]


def _texts(paths: list[str], settings: dict) -> dict[str, str]:
    """doc_id -> text exactly as the batch job read it (same planner, readers and sanitising)."""
    from extract.core.config import from_dict
    from extract.io.plan import plan
    from extract.io.readers import read_shard

    cfg = replace(from_dict(InputConfig, settings, "input"), path=tuple(paths))
    shards, _ = plan(cfg)
    return {r.doc_id: r.text for s in shards for r in read_shard(s, cfg) if r.doc_id is not None and r.text}


def unpack(folder: str, data_root: str, cache_dir: str) -> list[str]:
    """Every source of a kept set -> a working Parquet file (text + fp16 distributions) in the cache,
    named by the labels file's sha256, so a second run reads it again without re-reading the corpus."""
    from training.silver import silver_table

    manifest = read_manifest(folder)
    if manifest.get("format") != FORMAT or not manifest.get("sources"):
        raise SilverSourceError(f"data.silver: {folder}/{MANIFEST} is not a kept silver manifest of format {FORMAT} "
                                f"(found format {manifest.get('format')!r}, "
                                f"{len(manifest.get('sources', []))} sources).")
    out = []
    for entry in manifest["sources"]:
        labels_file = Path(folder) / entry["labels_file"]
        key = sha256_file(labels_file)[:24]
        target = Path(cache_dir, "kept", f"{entry['name']}-{key}.parquet")
        paths = check_sources(entry, data_root, f"data.silver {folder}")
        if not target.is_file():
            texts = _texts(paths, entry["input"])
            t = pq.read_table(labels_file)
            ids, texts_out, labelled = t.column("doc_id").to_pylist(), [], []
            for i, doc_id in enumerate(ids):
                text = texts.get(doc_id)
                if text is None or crc32(text) != t.column("text_crc32")[i].as_py():
                    raise SilverSourceError(
                        f"data.silver {folder}: document {doc_id!r} of '{entry['name']}' "
                        f"{'is missing from' if text is None else 'reads differently from'} its source, although "
                        "the files' sha256 match: the reader changed how it builds text. Relabel the source.")
                texts_out.append(text)
                probs = dequantise(t.column("probs")[i].values, entry.get("quantisation", "linear8"))
                labelled.append((np.asarray(t.column("word_start")[i].values),
                                 np.asarray(t.column("word_end")[i].values),
                                 probs.reshape(-1, len(entry["labels"]))))
            table = silver_table(ids, texts_out, labelled, entry["labels"], entry["teacher"])
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
        out.append(str(target))
    return out
