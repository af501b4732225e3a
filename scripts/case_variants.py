"""Write case variants of a CoNLL file: every token lowercased, UPPERCASED or Title-Cased, gold tags
unchanged, or "chat" (lowercased, and tokens that are only punctuation dropped where their tag is O), so
``python -m training evaluate`` measures how a model holds up on text written without
newswire casing. The re-casing is training/augment.py's ``recase`` (the one the training windows use).

    python scripts/case_variants.py ../shared/data/conll2003/valid.txt --out runs/case_dev
    # -> runs/case_dev/valid.lower.txt, valid.upper.txt, valid.title.txt, valid.chat.txt

The output is derived from CoNLL-2003 (research licence): keep it under runs/, out of git.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from training.conll import VARIANTS, variant_lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("conll", help="a CoNLL file (token first on each line), e.g. valid.txt")
    p.add_argument("--out", required=True, help="folder for <name>.<mode>.txt")
    p.add_argument("--modes", default=",".join(VARIANTS), help="comma-separated: lower,upper,title,chat")
    args = p.parse_args()
    src = Path(args.conll)
    lines = src.read_text(encoding="utf-8").splitlines()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for mode in args.modes.split(","):
        dst = out / f"{src.stem}.{mode}.txt"
        dst.write_text("\n".join(variant_lines(lines, mode)) + "\n", encoding="utf-8")
        print(f"{dst}: {len(lines)} lines, tokens {mode}")


if __name__ == "__main__":
    main()
