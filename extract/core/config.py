"""Typed, validated YAML configs: frozen dataclasses built from nested dicts.

One loader for every job (extract, finetune, label, distill). Unknown keys fail with the nearest
valid key suggested, and values are coerced by the field's declared type, never by how YAML 1.1
would guess it: the file and ``--set`` values are read with a loader that keeps every scalar a
string (``no``, ``0123`` and ``1e-5`` stay as written), and only the dataclass field's type turns
a string into an int, float, bool or None. ``--set a.b=value`` overrides are applied to the raw
dict before validation so they go through the same checks as the file; for a string field (or an
item of a tuple of strings) the text after ``=`` is taken exactly as written.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

_NULLS = ("", "~", "null")  # plain (unquoted) scalars an Optional field reads as None
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")
_FLOAT_WORDS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class ConfigError(ValueError):
    """A config problem the user must fix; the CLI prints it and exits with code 2."""


class _Quoted(str):
    """A scalar the YAML quoted (or wrote as a block): a string on purpose, never null."""


class YamlTagError(yaml.YAMLError):
    """A config holds an explicit YAML tag (``!!python/object/apply:...``, ``!!str``, ``!custom``)."""

    def __init__(self, tag: str, mark):
        self.tag, self.problem_mark = tag, mark
        shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag
        self.problem = (f"YAML tags are not allowed in a config (found {shown}); write the plain value "
                        "(quote it to make it a string)")
        super().__init__(self.problem)


class _Loader(yaml.BaseLoader):
    """YAML with every scalar a string (quoted ones marked), lists and mappings as such, and ``<<``
    merge keys resolved as ``yaml.safe_load`` does. Any explicit tag is refused (YamlTagError): a
    ``!!python/...`` value that was silently dropped would let a config look valid while saying
    something else."""

    flatten_mapping = yaml.SafeLoader.flatten_mapping

    def compose_node(self, parent, index):
        tag = getattr(self.peek_event(), "tag", None)
        if tag is not None:
            raise YamlTagError(tag, self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        return _Quoted(value) if node.style in ("'", '"', "|", ">") else value

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


@dataclasses.dataclass(frozen=True)
class _SetValue:
    """One ``--set`` value: the text as typed and what YAML makes of it (the text if YAML can't)."""

    text: str
    parsed: Any

    @property
    def literal(self) -> str:
        """For a string field: the text exactly, unless it is one quoted YAML scalar (``'0123'``)."""
        if isinstance(self.parsed, _Quoted) and self.text[:1] in ("'", '"'):
            return str(self.parsed)
        return self.text


def _parse_set_value(text: str) -> Any:
    if not text.strip():
        return ""
    try:
        value = yaml.load(text, Loader=_Loader)
    except YamlTagError as exc:
        raise ConfigError(f"--set value {text!r}: {exc.problem}.") from None
    except (yaml.YAMLError, RecursionError):
        return text  # e.g. `*.jsonl` (an alias to YAML): the literal string
    return text if value is None else value  # None: only a comment (`#x`)


def _is_null(value: Any) -> bool:
    if isinstance(value, _SetValue):
        return _is_null(value.parsed)
    return value is None or (type(value) is str and value.lower() in _NULLS)


def _plain(value: Any) -> Any:
    """Loader output as plain Python (strings stay strings)."""
    if isinstance(value, _SetValue):
        value = value.parsed
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _resolve(value: Any) -> Any:
    """For fields typed ``Any``: scalars typed the way ``yaml.safe_load`` types them (5, true, null)."""
    if isinstance(value, _SetValue):
        value = value.parsed
    if isinstance(value, _Quoted):
        return str(value)
    if isinstance(value, str):
        tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))
        if tag == "tag:yaml.org,2002:str":
            return value
        try:
            return yaml.SafeLoader("").construct_object(yaml.ScalarNode(tag, value))
        except (yaml.YAMLError, ValueError, OverflowError):
            return value
    if isinstance(value, (list, tuple)):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {_resolve(k): _resolve(v) for k, v in value.items()}
    return value


def did_you_mean(key: str, found: list[str]) -> str:
    """" Did you mean 'x'?" for the closest of ``found``, or nothing."""
    close = difflib.get_close_matches(key, found, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def suggest(key: str, valid: list[str]) -> str:
    return f"{did_you_mean(key, valid)} Valid keys: {', '.join(sorted(valid))}."


def _found(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(str(value) if isinstance(value, str) else value)


def _to_int(value: Any, where: str) -> int:
    err = ConfigError(f"{where}: expected an integer, found {_found(value)}.")
    if isinstance(value, bool):
        raise err
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            return int(value)  # "64", "0123" (decimal, not YAML 1.1 octal), "1_000"
        except ValueError:
            pass
        try:
            number = float(value)  # "1e3"
        except ValueError:
            raise err from None
    else:
        raise err
    if not math.isfinite(number) or not number.is_integer():
        raise err
    return int(number)


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value.lower() in _FLOAT_WORDS:
            return _FLOAT_WORDS[value.lower()]
        try:
            return float(value)  # "1e-5"
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number, found {_found(value)}.")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and _is_null(value):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {_found(value)}.")
    if isinstance(value, _SetValue):
        if tp is str:
            return value.literal
        if origin is tuple and not isinstance(value.parsed, (list, tuple, dict)):
            value = [value]  # `--set input.path=*.jsonl`: one item, its text as typed
        else:
            value = value.parsed
    if tp is Any:
        return _resolve(value)
    if origin is Literal:
        for choice in args:  # strings compare as written; Literal[1, 2] also accepts "1" and "2"
            if isinstance(value, str) and not isinstance(choice, bool) and str(choice) == value:
                return choice
            if not isinstance(value, str) and type(value) is type(choice) and value == choice:
                return choice
        raise ConfigError(
            f"{where}: expected one of {', '.join(map(repr, args))}, found {_found(value)}."
            + (suggest(str(value), [str(a) for a in args]) if isinstance(value, str) else "")
        )
    if tp in (list, tuple) or origin in (list, tuple):
        if isinstance(value, str) and (origin or tp) is tuple:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {_found(value)}.")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {_found(value)}.")
        if not args:  # a bare `dict` (e.g. a label map): as written, strings stay strings
            return _plain(value)
        return {_coerce(k, args[0], f"{where}.{_plain(k)}"): _coerce(v, args[1], f"{where}.{_plain(k)}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, found {_found(value)}.")
    if tp is int:
        return _to_int(value, where)
    if tp is float:
        return _to_float(value, where)
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"{where}: expected a string, found {_found(value)}.")
        return str(value)
    return value


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, naming the offending key on any problem."""
    label = where or "config"
    if isinstance(data, _SetValue):
        data = data.parsed
    if _is_null(data):  # an empty section (`model:`)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of keys, found {_found(data)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"Unknown key '{_join(where, key)}'." + suggest(str(key), list(fields)))
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], _join(where, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required key '{_join(where, name)}'.")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` strings. The value is read as YAML (``[a, b]``, ``{k: v}``) with every
    scalar a string, or taken literally where YAML can't read it; the field's type does the rest
    (a string field gets the text exactly as typed). An empty value is the empty string."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value (e.g. inference.batch_size=64), found '{item}'.")
        dotted, text = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if isinstance(child, _SetValue):
                child = child.parsed
            if _is_null(child):  # absent or empty (`distill:`): a new section
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {dotted}: '{key}' is a value, not a section.")
            node[key] = child
            node = child
        node[keys[-1]] = _SetValue(text, _parse_set_value(text))
    return raw


def load(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    raw: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}. Pass an existing YAML file with --config.")
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path} is not valid YAML{at}: {' '.join(str(problem).split())}.") from None
        if _is_null(raw):
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top, found {_found(raw)}.")
    return from_dict(cls, apply_overrides(raw, overrides or []))


def to_dict(cfg: Any) -> dict:
    """Plain dict (tuples as lists) for YAML/JSON next to every output."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def dump_yaml(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
