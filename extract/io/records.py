"""Bytes and mappings -> records: decoding with the declared fallback, one record from a JSON
object / CSV row / Parquet row with every problem named, and the length limit. Shared by every
reader."""
from __future__ import annotations

from extract.core.config import suggest
from extract.core.job_config import InputConfig
from extract.core.types import Record
from extract.io.sources import Line
from extract.text.sanitize import sanitize


def max_line_bytes(cfg: InputConfig) -> int:
    # A JSON line may escape every character as \uXXXX: 6 bytes a character, plus the other fields.
    return 6 * cfg.max_chars + (1 << 16)


def decode(raw: bytes, cfg: InputConfig) -> tuple[str | None, str | None, str | None]:
    """(text, warning, error): the declared encoding first, then the fallback."""
    try:
        return raw.decode(cfg.encoding), None, None
    except UnicodeDecodeError as exc:
        where = f"byte 0x{raw[exc.start]:02X} at offset {exc.start}"
        if not cfg.encoding_fallback:
            return None, None, f"not valid {cfg.encoding} ({where}); set input.encoding_fallback to decode it"
        text = raw.decode(cfg.encoding_fallback, errors="replace")
        return text, f"not valid {cfg.encoding} ({where}); decoded as {cfg.encoding_fallback}", None


def _join_warnings(*parts: str | None) -> str | None:
    found = [p for p in parts if p]
    return "; ".join(found) if found else None


def _keys(obj: dict) -> list[str]:
    """The keys, for a message: a JSON key may hold a lone surrogate, which no output can store."""
    return [sanitize(str(k))[0] for k in obj]


def record_from_mapping(obj, source: str, cfg: InputConfig, warning: str | None = None) -> Record:
    """One record from a JSON object / CSV row / Parquet row, with every problem named."""
    if not isinstance(obj, dict):
        return Record(None, None, source, f"expected a JSON object, found {type(obj).__name__}", warning)
    raw_id = obj.get(cfg.id_column)
    if isinstance(raw_id, str):
        raw_id, id_warning = sanitize(raw_id)
        warning = _join_warnings(warning, id_warning and f"id: {id_warning}")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return Record(None, None, source, f"missing id column '{cfg.id_column}'"
                      + ("" if cfg.id_column in obj else suggest(cfg.id_column, _keys(obj))),
                      warning)
    if isinstance(raw_id, (dict, list, float)) or isinstance(raw_id, bool):
        return Record(None, None, source, f"id column '{cfg.id_column}' holds {type(raw_id).__name__} "
                      f"{str(raw_id)[:40]!r}, expected a string or an integer", warning)
    doc_id = str(raw_id)
    present = [c for c in cfg.text_columns if c in obj]
    if not present:
        return Record(doc_id, None, source, f"missing text column(s) {', '.join(cfg.text_columns)}"
                      + suggest(cfg.text_columns[0], _keys(obj)), warning)
    parts = []
    for col in present:
        val = obj[col]
        if val is None:
            continue
        if not isinstance(val, str):
            return Record(doc_id, None, source, f"text column '{col}' holds {type(val).__name__} "
                          f"{str(val)[:40]!r}, expected a string", warning)
        if val:
            parts.append(val)
    return Record(doc_id, cfg.joiner.join(parts), source, warning=warning)


def limit(rec: Record, cfg: InputConfig) -> Record:
    """Over-long texts are `skipped` with the reason; text is sanitised for the tokenizer."""
    if rec.error is None and rec.text is not None:
        if len(rec.text) > cfg.max_chars:
            rec.status = "skipped"
            rec.error = (f"{len(rec.text):,} characters is over input.max_chars={cfg.max_chars:,}; "
                         "raise it to process this record")
            rec.text = None
        else:
            rec.text, note = sanitize(rec.text)
            rec.warning = _join_warnings(rec.warning, note)
    return rec


def _too_long(line: Line, source: str, cfg: InputConfig) -> Record:
    return Record(None, None, source, f"a line of over {line.too_long:,} bytes is over input.max_chars="
                  f"{cfg.max_chars:,} (at most {max_line_bytes(cfg):,} bytes a line); raise it to read this "
                  "record", status="skipped")
