"""What 8-bit kept silver loses against the fp16 working parts it was packed from: per word, the
largest and mean absolute change of a probability, the share of words whose argmax changes, and the
mean KL(fp16 || 8-bit) at the distillation temperature (both renormalised, as distillation reads
them), plus the bytes of each form.

    python scripts/silver_compression.py --parts runs/silver_reuters --kept data/silver --name reuters
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from training.silver_store import dequantise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", required=True, help="the label job's output folder (silver/part-*.parquet)")
    ap.add_argument("--kept", default="data/silver")
    ap.add_argument("--name", required=True)
    ap.add_argument("--temperature", type=float, default=2.0)
    args = ap.parse_args()
    manifest = json.loads(Path(args.kept, "manifest.json").read_text())
    entry = next(s for s in manifest["sources"] if s["name"] == args.name)
    n_labels = len(entry["labels"])
    kept = pq.read_table(Path(args.kept, entry["labels_file"]), columns=["doc_id", "probs"])
    q = dict(zip(kept.column("doc_id").to_pylist(), kept.column("probs").to_numpy(zero_copy_only=False)))
    files = sorted(Path(args.parts, "silver").glob("part-*.parquet"))
    diffs, flips, kls, words, fp16_bytes = [], 0, [], 0, 0
    for f in files:
        fp16_bytes += f.stat().st_size
        t = pq.read_table(f, columns=["doc_id", "probs"])
        for doc_id, p in zip(t.column("doc_id").to_pylist(), t.column("probs").to_numpy(zero_copy_only=False)):
            a = np.asarray(p, dtype=np.float64).reshape(-1, n_labels)
            b = dequantise(q[doc_id], entry.get("quantisation", "linear8")).astype(np.float64).reshape(-1, n_labels)
            a /= a.sum(1, keepdims=True)
            b /= np.maximum(b.sum(1, keepdims=True), 1e-12)
            diffs.append(np.abs(a - b).max(1))
            flips += int((a.argmax(1) != b.argmax(1)).sum())
            words += len(a)
            pa_, pb = a ** (1 / args.temperature), np.maximum(b, 1e-6) ** (1 / args.temperature)
            pa_ /= pa_.sum(1, keepdims=True)
            pb /= pb.sum(1, keepdims=True)
            kls.append((pa_ * (np.log(np.maximum(pa_, 1e-12)) - np.log(pb))).sum(1))
    d, k = np.concatenate(diffs), np.concatenate(kls)
    print(json.dumps({"words": words, "max_abs_diff": round(float(d.max()), 5), "mean_abs_diff_max_label":
                      round(float(d.mean()), 6), "argmax_changed": flips, "argmax_changed_share": flips / max(words, 1),
                      "mean_kl_at_T": float(k.mean()), "fp16_working_bytes_with_text": fp16_bytes,
                      "kept_bytes": entry["bytes"]}, indent=2))


if __name__ == "__main__":
    main()
