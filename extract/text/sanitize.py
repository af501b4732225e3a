"""Make any Python ``str`` safe for the Rust fast tokenizer, without moving a single offset.

A Python string may hold UTF-16 surrogates (U+D800..U+DFFF) on their own: valid JSON can spell one
(``"Reuters \\ud83d said"``, half of a cut emoji), and ``surrogateescape`` / ``surrogatepass``
decoding makes them too. They are not Unicode scalar values, so the string cannot be passed to Rust
as UTF-8 and the tokenizer raises ``TypeError: TextEncodeInput must be ...``. That is the only
input that breaks it: every other code point converts, and experiments with the tiny test tokenizer
and data/models/default (NUL and other C0/C1 controls, U+FFFE/U+FFFF and other noncharacters,
private use, unassigned code points, 200k combining marks in a row, 200k-character words, RTL/LRM
and other format characters, U+2028/U+2029/U+0085, CR/LF/CRLF mixes) showed no exception, offsets
inside the text, no empty pieces and linear time. The normaliser drops controls, format characters
and U+FFFD, and the WordPiece model turns unknown words into [UNK]; offsets still point into the text.

So only surrogates are replaced, each by U+FFFD, one code point for one: character offsets into the
cleaned text are offsets into the original. A surrogate pair stored as two code points is also two
replacements (joining it into one astral character would shift every later offset).
"""
from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def sanitize(text: str) -> tuple[str, str | None]:
    """(text the tokenizer accepts, same length; warning or None). Unchanged text is returned as is."""
    if text.isascii() or _SURROGATE.search(text) is None:  # isascii is O(1) in CPython
        return text, None
    clean, n = _SURROGATE.subn(REPLACEMENT, text)
    noun = "surrogate" if n == 1 else "surrogates"
    return clean, f"replaced {n} lone UTF-16 {noun} with U+FFFD (offsets unchanged)"
