"""The read/tokenise workers load tokenizer.json alone (no transformers, no torch: ~5 CPU-s less a
worker); the model stage checks that it tokenises as transformers' tokenizer of the same folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extract.model.loaded import PROBE, load_light_tokenizer, load_tokenizer, same_tokens
from extract.text.windows import encode
from tests.tiny import make_tiny_model, make_tiny_mpnet

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "data" / "models" / "default"
SAMPLE = ROOT / "data" / "sample" / "reuters_sample.jsonl"
FIELDS = ("ids", "starts", "ends", "word_ids", "casing")


def test_tokenizer_json_alone_tokenizes_the_sample_as_transformers():
    heavy, light = load_tokenizer(MODEL), load_light_tokenizer(MODEL)
    recs = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [v for r in recs for v in r.values() if isinstance(v, str)]
    texts += ([t.lower() for t in texts[:50]] + [t.upper() for t in texts[:50]]
              + [PROBE, "", " \u00a0 ", "e\u0301\u0301"])
    for text in texts:
        a, b = encode(text, heavy), encode(text, light)
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS), text[:80]
    assert len(encode(PROBE, light).ids) > 30  # the probe is tokenised whole, not truncated


def test_tokenizers_that_disagree_are_refused_with_what_to_do(tmp_path):
    bert, mpnet = make_tiny_model(tmp_path / "bert"), make_tiny_mpnet(tmp_path / "mpnet")
    same_tokens(load_tokenizer(bert), load_light_tokenizer(bert), bert)  # a folder agrees with itself
    with pytest.raises(ValueError, match="tokenizes differently.*save_pretrained"):
        same_tokens(load_tokenizer(bert), load_light_tokenizer(mpnet), bert)


def test_a_truncating_tokenizer_json_still_reads_whole_documents(tmp_path):
    folder = make_tiny_model(tmp_path / "m")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    text = " ".join(["bonn"] * 40)
    assert len(encode(text, load_light_tokenizer(folder)).ids) == len(encode(text, load_tokenizer(folder)).ids) > 8


def test_a_cpu_stage_worker_never_imports_transformers_or_torch(tmp_path):
    """What a prepare worker does, in a fresh process: build the processor without its model, read
    and tokenise a shard."""
    code = f"""
import sys
from extract.core.config import load
from extract.core.job_config import ExtractConfig
from extract.io.plan import plan
from extract.job.entities import ShardProcessor
cfg = load(ExtractConfig, {str(ROOT / 'configs' / 'extract.yaml')!r},
           ["input.path={SAMPLE}", "output.path={tmp_path / 'out'}", "model.path={MODEL}"])
shards, _ = plan(cfg.input, 1)
payload = ShardProcessor(cfg, {str(tmp_path / 'out')!r}, "m", load_model=False).prepare(shards[0])
assert len(payload.features) > 100, len(payload.features)
print(sorted(m for m in ("transformers", "torch") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
