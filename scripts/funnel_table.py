"""The funnel's table: for each rule (and off), dev F1 as is and lowercased, and on corpora the
share of windows skipped, entities found and words/s. One run, this machine.

    python scripts/funnel_table.py [--model data/models/default] [--docs 2000] [--chat 500]
        [--lowercase output/drift_demo/corpora/chat.jsonl]   # the drift demo's lowercase corpus
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ("capitalised-or-caseless", "capitalised-or-digit")


def reuters(n: int) -> list[str]:
    texts = []
    for f in sorted((ROOT.parent / "shared" / "data" / "corpus" / "reuters21578").glob("*.jsonl")):
        for line in open(f, encoding="utf-8"):
            d = json.loads(line)
            if d.get("body"):
                texts.append("\n\n".join(x for x in (d.get("title"), d["body"]) if x))
                if len(texts) == n:
                    return texts
    return texts


def chat(n: int, seed: int = 0) -> list[str]:
    """Lowercase chat-like messages: the genre where a capital-based filter pays."""
    rng = random.Random(seed)
    words = ("lol ok see you at the office tmrw, did u get the file? meeting moved to friday "
             "thanks!! can't make it, sorry. ping me when ur back, the build is broken again").split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(8, 60))) for _ in range(n)]


def measure(loaded, texts: list[str], funnel: str | None) -> tuple[float, int, float]:
    from extract.model.predict import predict_probs, window_text
    from extract.text.spans import decode

    s = loaded.settings
    docs = [window_text(t, loaded.tokenizer, int(s["max_length"]), int(s["stride"]), funnel) for t in texts]
    wins = sum(len(d.wins) for d in docs)
    skipped = sum(len(d.wins) - sum(d.keep) for d in docs if d.keep is not None)
    t0 = time.perf_counter()
    probs = predict_probs(loaded, texts, 32, funnel=funnel)
    ents = sum(len(decode(p, t, loaded.labels)) for p, t in zip(probs, texts))
    return skipped / max(1, wins), ents, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "default"))
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--chat", type=int, default=500)
    ap.add_argument("--lowercase", default=str(ROOT / "output" / "drift_demo" / "corpora" / "chat.jsonl"),
                    help="a JSON-lines file with a text column (default: the drift demo's chat corpus, if made)")
    args = ap.parse_args()
    from extract.model.load import load
    from training.conll import read_conll
    from training.evaluate import evaluate_loaded

    loaded = load(args.model, threads=2)
    valid = ROOT.parent / "shared" / "data" / "conll2003" / "valid.txt"
    lower = ROOT / "runs" / "case_dev" / "valid.lower.txt"  # scripts/case_variants.py
    print("| data | funnel | windows skipped | dev F1 (4 types) | entities | seconds | words/s |")
    print("|---|---|---|---|---|---|---|")
    for name, path in (("CoNLL dev", valid), ("CoNLL dev lowercased", lower)):
        if not path.exists():
            print(f"| {name} | - | - | {path} missing: python scripts/case_variants.py {valid} "
                  f"--out {path.parent} | | | |")
            continue
        dev = read_conll(path)
        for funnel in (None, *RULES):
            m, _ = evaluate_loaded(loaded, dev, "document", 64, funnel=funnel)
            print(f"| {name} | {funnel or 'off'} | - | {100 * m['f1']:.2f} | - | {m['seconds']:.1f} "
                  f"| {m['words_per_second']:,.0f} |")
    corpora = [("Reuters", reuters(args.docs)), ("chat (generated, lowercase)", chat(args.chat))]
    if Path(args.lowercase).exists():
        rows = [json.loads(line) for line in open(args.lowercase, encoding="utf-8")]
        corpora.append((f"drift demo chat ({Path(args.lowercase).name})", [r["text"] for r in rows]))
    for name, texts in corpora:
        words = sum(len(t.split()) for t in texts)
        for funnel in (None, *RULES):
            share, ents, secs = measure(loaded, texts, funnel)
            print(f"| {name}, {len(texts):,} docs | {funnel or 'off'} | {share:.1%} | - | {ents:,} | {secs:.1f} "
                  f"| {words / secs:,.0f} |")


if __name__ == "__main__":
    main()
