"""The GPU check's two measurements (scripts/gpu_check.sh runs them), with nothing but the
machine's own python3 and the repository on PYTHONPATH: no ray, no network, no venv.

    python scripts/gpu_check.py job --docs 20000 --device cuda --dtype bf16 --batch-tokens 65536 --out DIR
    python scripts/gpu_check.py roofline --device cuda --dtype bf16

job:      the batch job (runner local) through its real CLI on DOCS documents made from the bundled
          sample (data/sample: 200 Reuters-21578 documents, repeated with new ids), words/s of the
          whole run from its run.json.
roofline: the model alone on random wordpiece ids in full batches of max_length: wordpieces/s, the
          most the job could reach on this device.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "reuters_sample.jsonl"
MODEL = ROOT / "data" / "models" / "default"


def make_corpus(n: int, path: Path) -> int:
    """``n`` documents {"id", "text"} cycling through the sample; their whitespace words."""
    docs = [json.loads(l) for l in SAMPLE.read_text(encoding="utf-8").splitlines()]
    texts = ["\n\n".join(x for x in (d.get("title"), d.get("body")) if x) for d in docs]
    words = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            t = texts[i % len(texts)]
            words += len(t.split())
            f.write(json.dumps({"id": f"doc-{i}", "text": t}) + "\n")
    return words


def job(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.jsonl"
    words = make_corpus(args.docs, corpus)
    dest = out / "job"
    sets = {"runner": args.runner, "input.path": str(corpus), "input.text_columns": "[text]",
            "output.path": str(dest), "model.path": str(MODEL), "inference.device": args.device,
            "inference.dtype": args.dtype, "inference.batch_tokens": args.batch_tokens,
            "input.shard_bytes": args.shard_bytes, "show_progress": "false"}
    cmd = [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"), "--show", "0"]
    if (dest / "_job.json").exists():
        cmd.append("--overwrite")  # a folder this check wrote before: measure a whole run again
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"gpu_check: the job failed with exit {proc.returncode}")
    run = json.loads((dest / "run.json").read_text())
    this = run["this_run"]
    return {"documents": run["documents"], "entities": run["entities"], "words": words,
            "wall_seconds": round(seconds, 1), "job_words_per_second": this["words_per_second"],
            "wall_words_per_second": round(words / seconds, 1), "by_status": run["by_status"]}


def roofline(args) -> dict:
    import numpy as np
    import torch

    from extract.model.batch import batch_tensors
    from extract.model.load import load

    loaded = load(str(MODEL), device=args.device, dtype=args.dtype)
    tok, n = loaded.tokenizer, int(loaded.settings["max_length"])
    rng = np.random.default_rng(0)
    batch = max(1, args.batch_tokens // (n + 2))
    pieces = [(rng.integers(1000, tok.vocab_size, n), rng.integers(0, 4, n)) for _ in range(batch)]
    arrays = batch_tensors(pieces, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
    feed = {k: torch.from_numpy(v).to(loaded.device) for k, v in arrays.items()}
    cuda = loaded.device == "cuda"
    autocast = cuda and loaded.dtype != torch.float32

    def step() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=loaded.dtype, enabled=autocast):
            loaded.model(**feed).logits.float().cpu()

    step()  # warm-up (kernels, allocator)
    reps, t0 = 0, time.perf_counter()
    while reps < args.min_reps or time.perf_counter() - t0 < args.seconds:
        step()
        reps += 1
    seconds = time.perf_counter() - t0
    return {"device": loaded.device, "dtype": str(loaded.dtype), "batch": batch, "window": n, "reps": reps,
            "wordpieces_per_second": round(reps * batch * n / seconds, 1),
            "gpu": torch.cuda.get_device_name(0) if cuda else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["job", "roofline"])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--batch-tokens", type=int, default=65_536)
    ap.add_argument("--shard-bytes", type=int, default=4_000_000)
    ap.add_argument("--runner", default="local")
    ap.add_argument("--seconds", type=float, default=10.0, help="roofline: time at least this long")
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu_check"))
    args = ap.parse_args()
    facts = job(args) if args.what == "job" else roofline(args)
    print(json.dumps({args.what: facts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
