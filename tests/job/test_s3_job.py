"""The batch job with input, output and model on S3: moto's S3 server on 127.0.0.1 (tests/s3server.py).

Readers, the output folder and the model cache are checked against the same files on a local disk;
the CLI runs end to end reading s3://, writing s3://bucket/out, resuming after a lost part, and
loading a model from s3://; one run on Ray (a subprocess with its own embedded Ray, so its workers
start with the S3 environment).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.helpers import ROOT, SAMPLE, common, run_cli, source_texts

from extract.core import fs, listing, schema
from extract.core.config import ConfigError
from extract.core.job_config import InputConfig
from tests.s3server import moto_endpoint, s3_bucket  # noqa: F401  (fixtures)

SAMPLE_TEXTS = source_texts(SAMPLE)


# --------------------------------------------------------------------------------------- helpers

def upload_tree(local: Path, uri: str) -> None:
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.write_bytes_atomic(fs.join(uri, p.relative_to(local).as_posix()), p.read_bytes())


def parquet_corpus(n: int = 60) -> tuple[bytes, dict[str, str]]:
    """The first ``n`` sample records with ids of their own, as Parquet in row groups of 25."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:n]]
    table = pa.table({"id": [f"pq-{r['id']}" for r in rows], "title": [r["title"] for r in rows],
                      "body": [r["body"] for r in rows]})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, row_group_size=25)
    texts = {f"pq-{r['id']}": "\n\n".join(x for x in (r["title"], r["body"]) if x) for r in rows}
    return buf.getvalue().to_pybytes(), texts


def read_tables(out: str) -> tuple[pa.Table, pa.Table]:
    from extract.job.summary import table_of

    ents = table_of(fs.join(out, "entities"), schema.ENTITIES.names, schema.ENTITIES)
    docs = table_of(fs.join(out, "docs"), schema.DOCS.names, schema.DOCS)
    return ents, docs


def sorted_rows(t: pa.Table, keys: list[str]) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in keys])


def check_tables(out: str, texts: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    ents, docs = read_tables(out)
    assert sorted(docs.column("doc_id").to_pylist()) == sorted(texts)  # every record exactly once
    assert set(docs.column("status").to_pylist()) <= {"ok", "empty"}
    assert ents.num_rows > 0
    for row in ents.to_pylist():
        assert texts[row["doc_id"]][row["start"]:row["end"]] == row["text"]
    per_doc: dict[str, int] = {}
    for d in ents.column("doc_id").to_pylist():
        per_doc[d] = per_doc.get(d, 0) + 1
    assert {r["doc_id"]: r["n_entities"] for r in docs.to_pylist()} == {d: per_doc.get(d, 0) for d in texts}
    return ents, docs


def input_cfg(paths: list[str], **kw) -> InputConfig:
    return InputConfig(path=tuple(paths), **{"text_columns": ("text",), **kw})


# ------------------------------------------------------------- fs.py additions (local and S3)

@pytest.mark.parametrize("where", ["local", "s3"])
def test_fs_stat_has_files_download_literal(where, tmp_path, request):
    root = str(tmp_path / "root") if where == "local" else request.getfixturevalue("s3_bucket") + "/root"
    uri = fs.join(root, "runs[1]", "a.bin")  # glob characters in a folder's name
    fs.write_bytes_atomic(uri, b"abc")
    size, mtime = fs.stat(uri)
    assert size == 3 and (mtime == fs.mtime_ns(uri))
    if where == "local":
        assert (size, mtime) == (os.stat(uri).st_size, os.stat(uri).st_mtime_ns)
    with pytest.raises(FileNotFoundError):
        fs.stat(fs.join(root, "nope"))
    folder = fs.join(root, "runs[1]")
    assert listing.list_files(folder, literal=True) == [(uri, 3)]
    assert listing.list_files(fs.join(root, "runs[1]", "*.bin")) == []  # as a glob: "runs1"
    assert listing.has_files(root) and listing.has_files(uri) and not listing.has_files(fs.join(root, "nope"))
    fs.download(uri, str(tmp_path / "copy" / "a.bin"))
    assert (tmp_path / "copy" / "a.bin").read_bytes() == b"abc" and os.listdir(tmp_path / "copy") == ["a.bin"]
    with pytest.raises(FileNotFoundError):
        fs.download(fs.join(root, "nope"), str(tmp_path / "copy" / "nope"))
    assert os.listdir(tmp_path / "copy") == ["a.bin"]  # no temporary file left behind
    fs.delete(uri)
    assert not listing.has_files(root)  # S3 may keep "runs[1]/" as an empty marker: no files
    assert fs.split("S3://b/k/x") == ("s3", "b", "/k/x") and fs.split("rel/x") == ("", "", "rel/x")
    assert fs.join(tmp_path, "x") == str(tmp_path / "x") and fs.is_local(tmp_path)  # a Path is a local path


def test_local_folders_are_listed_as_os_walk_lists_them(tmp_path):
    (tmp_path / "d" / "real").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "d" / "real" / "f.txt").write_text("f")
    (tmp_path / "other" / "g.txt").write_text("g")
    (tmp_path / "d" / "linkdir").symlink_to(tmp_path / "other")
    (tmp_path / "d" / "linkfile.txt").symlink_to(tmp_path / "d" / "real" / "f.txt")
    (tmp_path / "d" / "broken.txt").symlink_to(tmp_path / "nowhere")
    walked = []
    for dirpath, dirnames, filenames in os.walk(tmp_path / "d"):
        dirnames.sort()
        walked += [os.path.join(dirpath, n) for n in sorted(filenames) if os.path.isfile(os.path.join(dirpath, n))]
    assert [u for u, _ in listing.list_files(str(tmp_path / "d"))] == walked
    assert not any("linkdir" in u for u in walked)


# ------------------------------------------------------------------------------------- readers

def write_mixed_corpus(root: Path) -> None:
    """One of each format, compressed and not, a text folder with a subfolder, a skipped file."""
    import csv
    import io

    root.mkdir(parents=True)
    lines = "".join(json.dumps({"id": f"j{i}", "text": f"John Smith {i} in Bonn."}) + "\n" for i in range(30))
    (root / "a.jsonl").write_text(lines + '{"broken\n', encoding="utf-8")
    (root / "b.jsonl.gz").write_bytes(gzip.compress(json.dumps({"id": "gz", "text": "Paris"}).encode() + b"\n"))
    (root / "c.json").write_text(json.dumps([{"id": "arr", "text": "Rome"}]), encoding="utf-8")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([["id", "text"], ["csv", "Line one,\nline two"]])
    (root / "d.csv").write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode())
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(7)], "text": [f"Berlin {i}" for i in range(7)]}),
                   root / "e.parquet", row_group_size=3)
    (root / "notes.md").write_text("skipped", encoding="utf-8")
    (root / "txt" / "sub").mkdir(parents=True)
    (root / "txt" / "one.txt").write_text("Angela Merkel", encoding="utf-8")
    (root / "txt" / "sub" / "two.txt").write_bytes(b"caf\xe9 in Paris")


def test_readers_on_s3_give_what_they_give_locally(s3_bucket, tmp_path):  # noqa: F811  (fixture)
    from extract.core.types import InputChanged
    from extract.io.plan import plan
    from extract.io.readers import read_shard

    local = tmp_path / "corpus"
    write_mixed_corpus(local)
    remote = fs.join(s3_bucket, "corpus")
    upload_tree(local, remote)
    for specs in (lambda r: [r], lambda r: [fs.join(r, "*.*"), fs.join(r, "txt")]):
        results = []
        for root in (str(local), remote):
            cfg = input_cfg(specs(root), shard_bytes=200, shard_size=2)
            shards, facts = plan(cfg)
            records = [rec for shard in shards for rec in read_shard(shard, cfg)]
            strip = lambda s: s.replace(root, "<root>") if s else s  # noqa: E731
            results.append(([(s.shard_id, s.fmt, s.start, s.stop, strip(s.file), [strip(f) for f in s.files])
                             for s in shards],
                            [(r.doc_id, r.text, strip(r.source), strip(r.error), r.warning, r.status)
                             for r in records],
                            facts["skipped_files"]))
        assert results[0] == results[1]
        shard_list, records, skipped = results[1]
        assert len(shard_list) > 6 and skipped == 1
    ids = [r[0] for r in records]  # text ids: relative to the folder listed (here corpus/txt)
    assert {"one.txt", "sub/two.txt", "p6", "csv", "arr", "gz", "j29"} <= set(ids)
    # S3 stamps: whole seconds, compared with what the store gives; a rewritten object is caught.
    cfg = input_cfg([fs.join(remote, "a.jsonl")])
    shards, _ = plan(cfg)
    assert shards[0].stamps[0][0] == (local / "a.jsonl").stat().st_size
    fs.write_bytes_atomic(fs.join(remote, "a.jsonl"), b'{"id": "x", "text": "other"}\n')
    with pytest.raises(InputChanged, match="changed after this job planned it"):
        list(read_shard(shards[0], cfg))


def test_s3_input_problems_are_config_errors(s3_bucket):  # noqa: F811  (fixture)
    from extract.io.plan import plan

    with pytest.raises(ConfigError, match=r"input.path: '.*/missing.jsonl' matched no file"):
        plan(input_cfg([fs.join(s3_bucket, "missing.jsonl")]))
    with pytest.raises(ConfigError, match="matched no readable input file"):
        plan(input_cfg([fs.join(s3_bucket, "nothing", "*.jsonl")]))
    with pytest.raises(ConfigError, match="glob in the bucket"):
        plan(input_cfg(["s3://buck*/x.jsonl"]))
    fs.write_bytes_atomic(fs.join(s3_bucket, "x.unknown"), b"?")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        plan(input_cfg([fs.join(s3_bucket, "x.unknown")]))


# ---------------------------------------------------------------------------------- output folder

def test_output_folder_on_s3(s3_bucket):  # noqa: F811  (fixture)
    from extract.job.output import MARKER, check_not_inputs, check_output_path, job_entries, prepare

    bucket = s3_bucket.removeprefix("s3://")
    for raw in ("", "  ", s3_bucket, s3_bucket + "/", s3_bucket + "//", "s3://", "s3:///out"):
        with pytest.raises(ConfigError, match="output.path"):
            check_output_path(raw)
    out = check_output_path(s3_bucket + "/runs/out/")
    assert out == s3_bucket + "/runs/out"
    check_not_inputs(out, [fs.join(s3_bucket, "runs", "outside.jsonl"), fs.join(s3_bucket, "runs", "out2", "a.jsonl"),
                           "/tmp/out/a.jsonl", f"gs://{bucket}/runs/out/a.jsonl"])
    with pytest.raises(ConfigError, match="contains the input file"):
        check_not_inputs(out, [fs.join(out, "in", "a.jsonl")])
    subs = ("entities", "docs", "_attempts")
    ident = {"a": 1}
    prepare(out, ident, subs, False)
    assert json.loads(fs.read_text(fs.join(out, MARKER))) == {"identity": ident}
    prepare(out, ident, subs, False)  # resume: the same job
    with pytest.raises(ConfigError, match="a was 1, now 2"):
        prepare(out, {"a": 2}, subs, False)
    for sub in ("entities", "docs"):
        fs.write_bytes_atomic(fs.join(out, sub, "part-00000-00000.parquet"), b"x")
    fs.write_bytes_atomic(fs.join(out, "run.json"), b"{}")
    fs.write_bytes_atomic(fs.join(out, "_attempts", "00000-00001.json"), b"{}")
    ours, foreign = job_entries(out, subs)
    assert foreign == [] and len(ours) == 5
    # A foreign file anywhere: --overwrite refuses and deletes nothing.
    fs.write_bytes_atomic(fs.join(out, "docs", "notes.txt"), b"mine")
    with pytest.raises(ConfigError, match=r"did not write \(docs/notes.txt\)"):
        prepare(out, {"a": 2}, subs, True)
    assert len(listing.list_files(out)) == 6
    fs.delete(fs.join(out, "docs", "notes.txt"))
    # --overwrite clears the job's files; the empty "folder" markers S3 leaves count as empty.
    prepare(out, {"a": 2}, subs, True)
    assert [fs.basename(u) for u, _ in listing.list_files(out)] == [MARKER]
    assert json.loads(fs.read_text(fs.join(out, MARKER))) == {"identity": {"a": 2}}
    fs.delete(fs.join(out, MARKER))
    prepare(out, {"a": 3}, subs, False)  # only markers left: an empty folder
    # A prefix holding someone else's files is refused, with or without --overwrite.
    other = fs.join(s3_bucket, "theirs")
    fs.write_bytes_atomic(fs.join(other, "thesis.docx"), b"years of work")
    with pytest.raises(ConfigError, match="not the output of this job"):
        prepare(other, ident, subs, False)
    with pytest.raises(ConfigError, match="not a folder this job wrote"):
        prepare(other, ident, subs, True)
    assert fs.read_bytes(fs.join(other, "thesis.docx")) == b"years of work"


def test_duplicates_attempts_and_report_on_s3(s3_bucket):  # noqa: F811  (fixture)
    from extract.job.attempts import Attempts, clear
    from extract.job.duplicates import settle
    from extract.job.summary import summarize

    out = fs.join(s3_bucket, "out")

    def docs_part(shard: str, ids: list[str]) -> pa.Table:
        n = len(ids)
        return pa.table({"doc_id": ids, "status": ["ok"] * n, "error": [None] * n, "n_chars": [4] * n,
                         "n_words": [1] * n, "n_tokens": [2] * n, "n_entities": [1] * n,
                         "source": [f"f@{shard}{i}" for i in range(n)], "warning": [None] * n,
                         "shard": [shard] * n, "index": list(range(n))}, schema=schema.DOCS)

    def ents_part(ids: list[str]) -> pa.Table:
        n = len(ids)
        return pa.table({"doc_id": ids, "label": ["PER"] * n, "text": ["Bonn"] * n, "start": [0] * n,
                         "end": [4] * n, "score": [0.9] * n, "model": ["m"] * n}, schema=schema.ENTITIES)

    for shard, ids in (("s0", ["a", "b"]), ("s1", ["b", "c"])):
        fs.write_parquet_atomic(ents_part(ids), fs.join(out, "entities", f"part-{shard}.parquet"))
        fs.write_parquet_atomic(docs_part(shard, ids), fs.join(out, "docs", f"part-{shard}.parquet"))
    assert settle(out, ("entities",)) == 1
    docs = fs.read_parquet(fs.join(out, "docs", "part-s1.parquet"))
    assert docs.column("status").to_pylist() == ["skipped", "ok"]
    assert docs.column("error").to_pylist()[0] == "duplicate id, first seen at f@s01"
    assert fs.read_parquet(fs.join(out, "entities", "part-s1.parquet")).column("doc_id").to_pylist() == ["c"]
    assert settle(out, ("entities",)) == 1  # idempotent
    s = summarize(out)
    assert s["documents"] == 4 and s["by_status"]["skipped"] == 1 and s["entities"] == 3
    # Attempt notes live beside the parts.
    a = Attempts.start(out, "s2")
    assert a.attempt == 1 and fs.is_file(fs.join(out, "_attempts", "s2.json"))
    a.begin(3)
    b = Attempts.start(out, "s2")
    assert b.attempt == 2 and b.kills == {3: 1}
    clear(out, "s2")
    assert not fs.exists(fs.join(out, "_attempts", "s2.json"))
    assert Attempts.start(out, "s2").attempt == 1


# ------------------------------------------------------------------------------------------- model

def test_model_from_s3_is_copied_once_and_loads(s3_bucket, tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811  (fixture)
    from extract.model import files as model_files
    from extract.core.cache import file_sha256
    from extract.model.loaded import model_id
    from extract.model.load import load

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uri = fs.join(s3_bucket, "models", "model")
    upload_tree(tiny_model_dir, uri)
    fs.write_bytes_atomic(fs.join(uri, "pytorch_model.bin"), b"pickle: never copied")
    fs.write_bytes_atomic(fs.join(uri, "casing_extra.safetensors"), b"copied")
    assert set(model_files.REQUIRED) <= set(model_files.remote_files(uri))
    local = model_files.local_model_dir(uri)
    assert local.name == "model" and str(local).startswith(str(tmp_path / "cache" / "nerbatch" / "models"))
    names = {p.name for p in local.iterdir() if not p.name.startswith(".")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "casing_extra.safetensors"} <= names
    assert "pytorch_model.bin" not in names
    assert names <= {p.name for p in tiny_model_dir.iterdir()} | {"casing_extra.safetensors"}
    assert model_id(local) == model_id(tiny_model_dir)  # same name, same weights
    loaded = load(local)
    assert loaded.labels and loaded.model_id == f"model@sha256:{file_sha256(tiny_model_dir / 'model.safetensors')}"
    # Copied once: a second call lists the folder and downloads nothing.
    calls = []
    real = fs.download
    monkeypatch.setattr(fs, "download", lambda *a, **k: (calls.append(a[0]), real(*a, **k)))
    assert model_files.local_model_dir(uri + "/") == local and calls == []
    # A file changed in place is copied again; a file gone is gone from the copy.
    fs.write_bytes_atomic(fs.join(uri, "casing_extra.safetensors"), b"copied again")
    fs.delete(fs.join(uri, "tokenizer_config.json"), missing_ok=True)
    model_files.local_model_dir(uri)
    assert calls == [fs.join(uri, "casing_extra.safetensors")]
    assert (local / "casing_extra.safetensors").read_bytes() == b"copied again"
    assert not (local / "tokenizer_config.json").exists()
    # Not a model directory: the same messages as for a local folder.
    with pytest.raises(FileNotFoundError, match="Model directory not found"):
        model_files.local_model_dir(fs.join(s3_bucket, "models", "nope"))
    fs.write_bytes_atomic(fs.join(s3_bucket, "models", "half", "config.json"), b"{}")
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        model_files.remote_files(fs.join(s3_bucket, "models", "half"))
    assert model_files.local_model_dir(str(tiny_model_dir)) == tiny_model_dir
    assert model_files.local_model_dir("file://" + str(tiny_model_dir)) == tiny_model_dir
    # The Python API (and through it the spaCy component and the service) takes the URI as well.
    from extract.api import Extractor

    text = "John Smith of Germany said in New York."
    remote = Extractor.from_pretrained(uri, labels=None, threads=1)(text)
    assert remote == Extractor.from_pretrained(str(tiny_model_dir), labels=None, threads=1)(text)


# ------------------------------------------------------------------------------------ the CLI, S3

def test_cli_reads_and_writes_s3_and_resumes_after_a_lost_part(s3_bucket, tiny_model_dir, tmp_path):  # noqa: F811  (fixture)
    """runner=local: JSON lines and Parquet from s3://, tables to s3://bucket/out; a lost docs part
    reruns that shard alone, to the same tables; a local run over the same files writes the same
    entities."""
    pq_bytes, pq_texts = parquet_corpus()
    fs.write_bytes_atomic(fs.join(s3_bucket, "in", "news.jsonl"), SAMPLE.read_bytes())
    fs.write_bytes_atomic(fs.join(s3_bucket, "in", "more.parquet"), pq_bytes)
    texts = {**SAMPLE_TEXTS, **pq_texts}
    out = fs.join(s3_bucket, "out")
    sizes = ["--set", "input.shard_bytes=40000", "--set", "input.shard_size=25"]
    args = [*common(tiny_model_dir, Path("unused"), "local"), *sizes]
    args[args.index("output.path=unused")] = f"output.path={out}"
    assert run_cli(*args, "--set", f"input.path={fs.join(s3_bucket, 'in')}") == 0
    ents, docs = check_tables(out, texts)
    report = json.loads(fs.read_text(fs.join(out, "run.json")))
    assert report["complete"] and report["documents"] == len(texts) and report["entities"] == ents.num_rows
    n_shards = report["this_run"]["shards"]
    assert n_shards >= 6  # 4 byte ranges of news.jsonl, 3 row ranges of more.parquet
    sources = set(docs.column("source").to_pylist())
    assert all(s.startswith(fs.join(s3_bucket, "in") + "/") for s in sources)
    assert not listing.has_files(fs.join(out, "_attempts"))
    # The same files on a local disk give the same entities.
    local_in = tmp_path / "in"
    local_in.mkdir()
    shutil.copy(SAMPLE, local_in / "news.jsonl")
    (local_in / "more.parquet").write_bytes(pq_bytes)
    assert run_cli(*common(tiny_model_dir, tmp_path / "local_out", "local"), *sizes,
                   "--set", f"input.path={local_in}") == 0
    local_ents, _ = read_tables(str(tmp_path / "local_out"))
    keys = ["doc_id", "start", "label"]
    assert sorted_rows(ents, keys).equals(sorted_rows(local_ents, keys))
    # A crash lost one docs part (the completion mark): only that shard runs again.
    parts = sorted(u for u, _ in listing.list_files(fs.join(out, "docs")))
    fs.delete(parts[2])
    assert run_cli(*args, "--set", f"input.path={fs.join(s3_bucket, 'in')}") == 0
    report = json.loads(fs.read_text(fs.join(out, "run.json")))
    assert report["this_run"]["shards"] == 1 and report["complete"]
    ents2, docs2 = read_tables(out)
    assert sorted_rows(ents2, keys).equals(sorted_rows(ents, keys))
    assert sorted_rows(docs2, ["shard", "index"]).equals(sorted_rows(docs, ["shard", "index"]))
    # A different job into the same prefix is refused; --overwrite starts fresh.
    assert run_cli(*args, "--set", f"input.path={fs.join(s3_bucket, 'in')}", "--set", "model.min_score=0.5") == 2
    assert run_cli(*args, "--set", f"input.path={fs.join(s3_bucket, 'in')}", "--set", "model.min_score=0.5",
                   "--overwrite") == 0
    assert json.loads(fs.read_text(fs.join(out, "run.json")))["this_run"]["shards"] == n_shards


def test_cli_loads_a_model_from_s3(s3_bucket, tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811  (fixture)
    from extract.core.cache import file_sha256

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = fs.join(s3_bucket, "models", "model")
    upload_tree(tiny_model_dir, model)
    pq_bytes, pq_texts = parquet_corpus(20)
    fs.write_bytes_atomic(fs.join(s3_bucket, "in", "more.parquet"), pq_bytes)
    out = tmp_path / "out"
    args = common(tiny_model_dir, out, "local")
    args[args.index(f"model.path={tiny_model_dir}")] = f"model.path={model}"
    assert run_cli(*args, "--set", f"input.path={fs.join(s3_bucket, 'in', 'more.parquet')}") == 0
    ents, _ = check_tables(str(out), pq_texts)
    assert set(ents.column("model").to_pylist()) == {
        f"model@sha256:{file_sha256(tiny_model_dir / 'model.safetensors')}"}
    assert (tmp_path / "cache" / "nerbatch" / "models").is_dir()


@pytest.mark.ray
def test_cli_on_ray_reads_and_writes_s3(s3_bucket, tiny_model_dir, tmp_path):  # noqa: F811  (fixture)
    """runner=ray in a subprocess with its own embedded Ray: its workers start with the S3
    environment the s3_bucket fixture set (a session-wide Ray started earlier would not have it)."""
    pq_bytes, pq_texts = parquet_corpus(40)
    fs.write_bytes_atomic(fs.join(s3_bucket, "in", "more.parquet"), pq_bytes)
    out = fs.join(s3_bucket, "out")
    args = [*common(tiny_model_dir, Path("unused"), "ray"), "--set", "input.shard_size=10",
            "--set", "ray.num_actors=1", "--set", f"input.path={fs.join(s3_bucket, 'in')}"]
    args[args.index("output.path=unused")] = f"output.path={out}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"),
                           *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_tables(out, pq_texts)
    report = json.loads(fs.read_text(fs.join(out, "run.json")))
    assert report["complete"] and report["this_run"]["shards"] == 4
