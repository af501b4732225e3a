"""Silver and CoNLL through Hugging Face ``datasets``: same windows as the list path, seeded sampling,
the fingerprint cache, hub-style names on local files, and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.tiny import WORDS, tiny_tokenizer

from extract.text.labels import bio_labels
from training.silver import silver_table

pytest.importorskip("datasets")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"
LABELS = bio_labels(("PER", "LOC", "ORG", "MISC"))


def read_silver(paths, labels):
    """The list path the datasets path replaced, as the reference: every document of every part in
    file order, in memory (texts, word starts, student-order distributions)."""
    import json

    from training.silver import label_order, silver_files, student_probs

    texts, starts, probs = [], [], []
    for f in silver_files(paths):
        table = pq.read_table(f)
        theirs = json.loads(table.schema.metadata[b"labels"])
        order = label_order(theirs, labels, f)
        for row in table.to_pylist():
            texts.append(row["text"])
            starts.append(np.asarray(row["word_start"], dtype=np.int64))
            probs.append(student_probs(row["probs"], len(row["word_start"]), len(theirs), order))
    return texts, starts, probs


def fake_docs(n: int, seed: int = 0):
    """n documents of tiny-vocab words (some capitalised, some long enough for several windows)."""
    rng = np.random.default_rng(seed)
    ids, texts, labelled = [], [], []
    for i in range(n):
        words = [str(w).capitalize() if rng.random() < 0.3 else str(w)
                 for w in rng.choice(WORDS + ["Bonn", "x1", "é"], size=int(rng.integers(3, 40)))]
        text = f"d{i} " + " ".join(words) + " ."
        starts, ends, pos = [], [], 0
        for w in text.split(" "):
            starts.append(pos)
            ends.append(pos + len(w))
            pos += len(w) + 1
        p = rng.dirichlet(np.ones(len(LABELS) + 1), size=len(starts))  # the teacher has one more label
        ids.append(f"d{i}")
        texts.append(text)
        labelled.append((np.asarray(starts), np.asarray(ends), p))
    return ids, texts, labelled


def write_silver(folder: Path, n: int, seed: int = 0, parts: int = 2, shuffle_labels: bool = True) -> Path:
    """Parts as `training label` writes them; the teacher has an extra label and, in later parts, another order."""
    folder.mkdir(parents=True, exist_ok=True)
    ids, texts, labelled = fake_docs(n, seed)
    teacher = list(LABELS) + ["B-DATE"]
    cut = np.linspace(0, n, parts + 1).astype(int)
    for k in range(parts):
        order = (np.random.default_rng(k).permutation(len(teacher)) if (k and shuffle_labels)
                 else np.arange(len(teacher)))
        theirs = [teacher[j] for j in order]
        rows = [(s, e, p[:, order]) for s, e, p in labelled[cut[k]:cut[k + 1]]]
        pq.write_table(silver_table(ids[cut[k]:cut[k + 1]], texts[cut[k]:cut[k + 1]], rows, theirs, {"t": 1}),
                       folder / f"part-{k:05d}.parquet")
    return folder


def windows(sources, tmp_path, max_docs=0, seed=13, stride=8, tokenizer=None, log=None):
    from training.datasets_io import silver_windows

    logs = []
    w = silver_windows([str(s) for s in sources], LABELS, tokenizer or tiny_tokenizer(), 32, stride, True, max_docs,
                       seed, str(tmp_path / "cache"), log=logs.append)
    return w, logs


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in ("ids", "casing", "labels", "soft", "soft_mask"):
            u, v = getattr(x, f), getattr(y, f)
            assert u.dtype == v.dtype and u.shape == v.shape, f
            np.testing.assert_array_equal(u, v)


def test_datasets_path_gives_the_windows_of_the_list_path(tmp_path):
    from training.examples import silver_examples

    silver = write_silver(tmp_path / "silver", 12)
    texts, starts, probs = read_silver([str(silver)], LABELS)
    old = silver_examples(texts, starts, probs, tiny_tokenizer(), 32, 8)
    new, logs = windows([silver], tmp_path)
    assert len(old) > 12  # long documents give several windows
    assert_same(old, list(new))  # iteration
    assert_same(old, [new[i] for i in range(len(new))])  # indexing (what fit does)
    assert logs and logs[0].startswith(f"silver: 12 docs sampled of 12, {len(old)} windows (cache miss")


def test_examples_chains_lists_and_arrow_windows(tmp_path):
    from training.datasets_io import Examples

    new, _ = windows([write_silver(tmp_path / "silver", 4)], tmp_path)
    gold = list(new)[:2]
    chain = Examples(gold)
    chain += new
    chain += []
    chain += gold[:1]
    assert len(chain) == 2 + len(new) + 1
    assert_same(list(chain), gold + list(new) + gold[:1])
    assert_same([chain[i] for i in range(len(chain))], list(chain))
    assert_same([chain[-1]], gold[:1])
    with pytest.raises(IndexError):
        chain[len(chain)]


def sampled_texts(silver: Path, tmp_path: Path, n: int, seed: int) -> list[str]:
    from training.datasets_io import open_silver, sample_docs

    raw, _ = open_silver([str(silver)], LABELS, str(tmp_path / "cache"))
    return list(sample_docs(raw, n, seed)["text"])


def test_seeded_sample_is_reproducible_random_and_seed_dependent(tmp_path):
    silver = write_silver(tmp_path / "silver", 40)
    _, all_texts, _ = fake_docs(40)
    a, again, other = (sampled_texts(silver, tmp_path, 10, s) for s in (13, 13, 14))
    assert len(a) == len(set(a)) == 10 and set(a) <= set(all_texts)
    assert a == again
    assert set(a) != set(other)
    assert set(a) != set(all_texts[:10])  # not simply the first N in file order
    assert sampled_texts(silver, tmp_path, 0, 13) == all_texts  # 0 = all, in file order
    assert sampled_texts(silver, tmp_path, 99, 13) == all_texts
    # the windows follow the sample
    w, logs = windows([silver], tmp_path, max_docs=10, seed=13)
    w2, _ = windows([silver], tmp_path, max_docs=10, seed=14)
    assert logs[0].startswith("silver: 10 docs sampled of 40")
    first_ids = lambda ws: {tuple(e.ids[:3]) for e in ws}  # noqa: E731
    assert first_ids(w) != first_ids(w2)


def test_windows_are_cached_by_fingerprint(tmp_path, monkeypatch):
    import training.datasets_io as dio

    silver = write_silver(tmp_path / "silver", 8)
    before = sorted(p.name for p in silver.rglob("*"))
    first, logs1 = windows([silver], tmp_path)
    calls = []
    real = dio._window_maker

    def counting_maker(*a):
        make = real(*a)
        return lambda batch: (calls.append(1), make(batch))[1]

    monkeypatch.setattr(dio, "_window_maker", counting_maker)
    again, logs2 = windows([silver], tmp_path)
    assert first.cache_hit is False and again.cache_hit is True
    assert "cache miss" in logs1[0] and "cache hit" in logs2[0]
    assert_same(list(first), list(again))
    files = [f["filename"] for f in again.dataset.cache_files]
    assert files and all(Path(f).is_relative_to(tmp_path / "cache" / "windows") for f in files)
    assert sorted(p.name for p in silver.rglob("*")) == before  # nothing written into the data folder
    # any setting the windows depend on gives another fingerprint: a miss
    assert windows([silver], tmp_path, stride=4)[0].cache_hit is False
    assert windows([silver], tmp_path, max_docs=5)[0].cache_hit is False
    from transformers import BertTokenizerFast

    from tests.tiny import tiny_vocab

    cased = BertTokenizerFast(vocab=tiny_vocab(), do_lower_case=False, strip_accents=True)
    assert windows([silver], tmp_path, tokenizer=cased)[0].cache_hit is False
    assert windows([silver], tmp_path, tokenizer=tiny_tokenizer())[0].cache_hit is True  # a new, equal tokenizer
    assert len(calls) == 3  # the map function ran only on the 3 misses (8, 8 and 5 docs: one batch each)


def test_fingerprint_covers_labels_and_casing(tmp_path):
    from training.datasets_io import open_silver, windows_fingerprint

    raw, sets = open_silver([str(write_silver(tmp_path / "silver", 3))], LABELS, str(tmp_path / "cache"))
    tok = tiny_tokenizer()
    base = windows_fingerprint(raw, sets, LABELS, tok, 32, 8, True)
    assert base == windows_fingerprint(raw, sets, LABELS, tiny_tokenizer(), 32, 8, True)
    tok.backend_tokenizer.enable_truncation(16)  # call-time state that encode() resets: not the tokenizer's identity
    assert base == windows_fingerprint(raw, sets, LABELS, tok, 32, 8, True)
    assert base != windows_fingerprint(raw, sets, LABELS, tok, 32, 8, False)
    assert base != windows_fingerprint(raw, sets, LABELS[::-1], tok, 32, 8, True)
    assert base != windows_fingerprint(raw, sets, LABELS, tok, 64, 8, True)


def test_conll_dataset_rows_and_tags():
    from training.conll import conll_dataset, conll_documents, read_conll

    docs = read_conll(FIXTURE)
    ds = conll_dataset(FIXTURE)
    sents = [s for d in docs for s in d.sentences]
    assert len(ds) == len(sents)
    assert ds.column_names == ["doc", "sentence", "line", "tokens", "ner_tags"]
    assert ds["tokens"] == [s.tokens for s in sents] and ds["ner_tags"] == [s.tags for s in sents]
    assert all(isinstance(t, str) for tags in ds["ner_tags"] for t in tags)
    assert len(set(ds["doc"])) == len(docs)
    back = conll_documents(ds)
    assert [[(s.tokens, s.tags, s.line) for s in d.sentences] for d in back] == \
        [[(s.tokens, s.tags, s.line) for s in d.sentences] for d in docs]


def hub_layout(root: Path, n: int) -> Path:
    """A dataset folder as the hub stores one: data/train-*.parquet, no loading script."""
    src = write_silver(root / "tmp_parts", n, parts=1)
    (root / "acme" / "silver-news" / "data").mkdir(parents=True)
    (src / "part-00000.parquet").rename(root / "acme" / "silver-news" / "data" / "train-00000-of-00001.parquet")
    return root / "acme" / "silver-news"


def test_hub_name_goes_through_load_dataset(tmp_path, monkeypatch):
    import datasets

    import training.datasets_io as dio

    hub_layout(tmp_path, 6)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    seen = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (seen.append(a[0]), real(*a, **k))[1])
    assert not dio._is_parts("acme/silver-news")  # not parts: the name goes to load_dataset like a hub id
    got, logs = windows(["acme/silver-news"], tmp_path)
    assert seen == ["acme/silver-news"]
    assert logs[0].startswith("silver: 6 docs sampled of 6")
    from training.examples import silver_examples

    texts, starts, probs = read_silver([str(tmp_path / "acme/silver-news/data/train-00000-of-00001.parquet")], LABELS)
    assert_same(list(got), silver_examples(texts, starts, probs, tiny_tokenizer(), 32, 8))


def test_missing_hub_name_passes_validation_and_fails_clearly_at_load(tmp_path, monkeypatch):
    from training.config import DataConfig, DistillConfig, TrainConfig, looks_like_hub_id
    from training.datasets_io import SilverLoadError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert looks_like_hub_id("acme/no-such-set") and not looks_like_hub_id("runs/typo")
    assert not looks_like_hub_id("a/b/c") and not looks_like_hub_id("/abs/path")
    TrainConfig(data=DataConfig(train=str(FIXTURE), dev=str(FIXTURE), silver=("acme/no-such-set",)),
                distill=DistillConfig()).validate()
    from extract.core.config import ConfigError

    with pytest.raises(ConfigError, match="not found: runs/typo"):
        TrainConfig(data=DataConfig(train=str(FIXTURE), dev=str(FIXTURE), silver=("runs/typo",)),
                    distill=DistillConfig()).validate()
    with pytest.raises(SilverLoadError, match=r"not a local path, and `datasets.load_dataset\('acme/no-such-set'\)` "
                                              r"failed.*Expected a local file/folder of Parquet parts.*Fix the path"):
        windows(["acme/no-such-set"], tmp_path)


def test_label_mismatch_is_a_clear_error(tmp_path):
    from training.datasets_io import SilverLoadError, silver_windows

    ids, texts, labelled = fake_docs(2)
    few = [l for l in LABELS if not l.endswith("MISC")]
    folder = tmp_path / "silver"
    folder.mkdir()
    pq.write_table(silver_table(ids, texts, [(s, e, p[:, :len(few)]) for s, e, p in labelled], few, {}),
                   folder / "part-00000.parquet")
    with pytest.raises(ValueError, match=r"lack \['B-MISC', 'I-MISC'\] that the student predicts"):
        windows([folder], tmp_path)
    t = pq.read_table(folder / "part-00000.parquet")
    pq.write_table(t.replace_schema_metadata({}), folder / "part-00000.parquet")
    with pytest.raises(SilverLoadError, match="no `labels` entry in the Parquet schema metadata"):
        silver_windows([str(folder)], LABELS, tiny_tokenizer(), 32, 8, True, 0, 13, str(tmp_path / "c"))
