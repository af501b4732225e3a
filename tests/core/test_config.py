from dataclasses import dataclass, field
from pathlib import Path

import pytest

from extract.core.config import ConfigError, apply_overrides, from_dict, load
from extract.core.job_config import ExtractConfig
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Inner:
    lr: float = 1.0
    steps: int = 3
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_coercion_of_yaml_strings():
    cfg = from_dict(Outer, {"inner": {"lr": "1e-5", "steps": "10", "names": "x"}, "flag": "true"})
    assert cfg.inner.lr == 1e-5 and cfg.inner.steps == 10 and cfg.inner.names == ("x",) and cfg.flag


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"Unknown key 'inner.stpes'.*Did you mean 'steps'"):
        from_dict(Outer, {"inner": {"stpes": 3}})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"inner.steps: expected an integer, found 'many'"):
        from_dict(Outer, {"inner": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"inner.steps: expected an integer"):
        from_dict(Outer, {"inner": {"steps": 2.5}})


def test_overrides():
    raw = apply_overrides({"inner": {"lr": 1}}, ["inner.lr=3e-4", "flag=true", "inner.names=[p, q]"])
    cfg = from_dict(Outer, raw)
    assert cfg.inner.lr == 3e-4 and cfg.flag and cfg.inner.names == ("p", "q")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_literal_choices():
    with pytest.raises(ConfigError, match=r"runner: expected one of 'ray', 'local', found 'rya'.*Did you mean 'ray'"):
        from_dict(ExtractConfig, {"runner": "rya"})


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_in_configs_loads(path, monkeypatch, tiny_model_dir, tmp_path):
    """Every committed YAML parses into its typed config; paths to data and training outputs that
    only exist on a development machine are pointed at test fixtures."""
    from training.label import LabelConfig

    monkeypatch.chdir(ROOT)
    fixture = str(ROOT / "tests" / "fixtures" / "tiny_conll.txt")
    if path.name.startswith("extract"):
        cfg = load(ExtractConfig, path, [f"model.path={tiny_model_dir}"])
        assert cfg.runner == "ray" and cfg.model.labels == ("PER", "LOC", "ORG")
    elif path.name.startswith("label"):
        teacher = tiny_model_dir
        if (yaml.safe_load(path.read_text()).get("inference") or {}).get("engine") == "onnx":
            import shutil

            from extract.model.export import export_onnx

            teacher = shutil.copytree(tiny_model_dir, tmp_path / "teacher")  # the fixture stays torch-only
            export_onnx(teacher)
        cfg = load(LabelConfig, path, [f"teacher.models=[{teacher}]"])
        assert cfg.input.text_columns == ("title", "body")
    elif path.name.startswith("serve"):
        from extract.serve.config import ServeConfig

        cfg = load(ServeConfig, path, [f"model.path={tiny_model_dir}"])
        cfg.validate()
        assert cfg.model.labels == ("PER", "LOC", "ORG") and cfg.serve.max_batch_size >= 1
    else:
        cfg = load(TrainConfig, path, [f"data.train={fixture}", f"data.dev={fixture}", "data.silver=[]"])
        assert cfg.optim.lr < 1e-3  # "5e-5" in YAML became a float
        assert (cfg.distill is not None) == path.name.startswith("distill")


# --- values are coerced by the field's declared type, never by YAML 1.1's guesses -------------

import typing  # noqa: E402

import yaml  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from training.config import DistillConfig  # noqa: E402


def _extract(*overrides: str, path=None) -> ExtractConfig:
    return load(ExtractConfig, path, list(overrides))


@pytest.mark.parametrize("text", ["no", "0123", "yes", "off", "1e3", "null", "~", "True", "0x1F", "2020-01-01"])
def test_set_keeps_strings_as_written(text):
    cfg = _extract(f"input.id_column={text}", f"model.path={text}")
    assert cfg.input.id_column == text and type(cfg.input.id_column) is str
    assert cfg.model.path == text


def test_set_keeps_tuple_items_as_written():
    cfg = _extract("input.text_columns=[no, 0123]", "model.labels=[on, '1', off]")
    assert cfg.input.text_columns == ("no", "0123")
    assert cfg.model.labels == ("on", "1", "off")
    assert all(type(x) is str for x in cfg.input.text_columns + cfg.model.labels)
    assert _extract("input.text_columns=0123").input.text_columns == ("0123",)


def test_yaml_file_keeps_strings_as_written(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "input:\n"
        "  id_column: no\n"
        "  text_columns: [no, 0123, yes]\n"
        '  joiner: "\\n\\n"\n'
        '  encoding_fallback: ""\n'
        "  max_chars: 1e6\n"
        "model:\n"
        "  path: 0123\n"
        "  labels: [ON, NO]\n"
        "  min_score: 5e-1\n"
        "ray:\n"
        "  address: ~\n"
        "show_progress: off\n",
        encoding="utf-8",
    )
    cfg = _extract(path=path)
    assert cfg.input.id_column == "no" and cfg.input.text_columns == ("no", "0123", "yes")
    assert cfg.input.joiner == "\n\n" and cfg.input.encoding_fallback == ""
    assert cfg.input.max_chars == 1_000_000 and type(cfg.input.max_chars) is int
    assert cfg.model.path == "0123" and cfg.model.labels == ("ON", "NO") and cfg.model.min_score == 0.5
    assert cfg.ray.address is None and cfg.show_progress is False
    # quoting keeps a string a string, even where a plain scalar would be null
    path.write_text('ray:\n  address: "null"\nmodel:\n', encoding="utf-8")
    cfg = _extract(path=path)
    assert cfg.ray.address == "null" and cfg.model.path == "data/models/default"  # empty section: defaults


def test_yaml_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model:\n  path: &p no\ninput:\n  <<: {id_column: *p, shard_size: '8'}\n  encoding: utf-8\n",
                    encoding="utf-8")
    cfg = _extract(path=path)
    assert cfg.model.path == "no" and cfg.input.id_column == "no" and cfg.input.shard_size == 8


def test_quoted_set_value_is_unquoted():
    """A value that is one quoted YAML scalar (the old workaround) gives the quoted text."""
    cfg = _extract("input.id_column='0123'", 'input.joiner=" | "', 'ray.address="null"', "input.encoding_fallback=''")
    assert cfg.input.id_column == "0123" and cfg.input.joiner == " | " and cfg.ray.address == "null"
    assert cfg.input.encoding_fallback == ""


def test_empty_set_value_is_the_empty_string():
    cfg = _extract("input.id_column=", "input.encoding_fallback=", "ray.address=")
    assert cfg.input.id_column == "" and cfg.input.encoding_fallback == ""
    assert cfg.ray.address is None  # Optional: "", "null" and "~" mean None
    with pytest.raises(ConfigError, match=r"^inference.batch_size: expected an integer, found ''\.$"):
        _extract("inference.batch_size=")


@pytest.mark.parametrize("text", ["*.jsonl", "*", "&x", "[1", "{a", "a: b: c", "'a'b", "%x", "@x", "`x`", "#x"])
def test_value_yaml_cannot_read_is_the_literal_string(text):
    cfg = _extract(f"input.path={text}", f"model.path={text}", f"input.id_column={text}")
    assert cfg.model.path == text and cfg.input.id_column == text
    assert cfg.input.path == (text,)


@pytest.mark.parametrize(
    "override, message",
    [
        ("inference.batch_size=*x", r"inference.batch_size: expected an integer, found '\*x'"),
        ("inference.batch_size=2.5", r"inference.batch_size: expected an integer, found '2.5'"),
        ("inference.batch_size=no", r"inference.batch_size: expected an integer, found 'no'"),
        ("model.min_score=*x", r"model.min_score: expected a number, found '\*x'"),
        ("show_progress=*x", r"show_progress: expected true or false, found '\*x'"),
        ("show_progress=1", r"show_progress: expected true or false, found '1'"),
        ("inference.device=*cuda", r"inference.device: expected one of 'cpu', 'cuda', 'auto', found '\*cuda'"),
        ("input.id_column=", None),
        ("model=*x", r"model: expected a mapping of keys, found '\*x'"),
        ("input.shard_size=[1, 2]", r"input.shard_size: expected an integer, found a list"),
        ("input.text_columns={a: b}", r"input.text_columns: expected a list, found a mapping"),
    ],
)
def test_wrong_set_value_is_one_line_config_error(override, message):
    if message is None:
        _extract(override)
        return
    with pytest.raises(ConfigError, match=message) as info:
        _extract(override)
    assert "\n" not in str(info.value)


def test_cli_exits_2_on_bad_set_value(capsys):
    from extract.__main__ import main

    assert main(["run", "--set", "inference.batch_size=*x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inference.batch_size: expected an integer, found '*x'" in err


def test_invalid_yaml_file_is_one_line_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input:\n  path: [a\n  id_column: *nope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(line \d+, column \d+\)") as info:
        _extract(path=path)
    assert "\n" not in str(info.value)
    path.write_bytes(b"input:\n  id_column: \xff\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        _extract(path=path)


@pytest.mark.parametrize(
    "text, expected",
    [("64", 64), ("0123", 123), ("-1", -1), ("1e3", 1000), ("1_000", 1000), ("2.0", 2)],
)
def test_int_by_type(text, expected):
    value = _extract(f"model.stride={text}").model.stride
    assert value == expected and type(value) is int


@pytest.mark.parametrize("text", ["2.5", "1e-1", "inf", ".nan", "true", "0x10", "ten"])
def test_int_rejects_non_integers(text):
    with pytest.raises(ConfigError, match=r"^model.stride: expected an integer"):
        _extract(f"model.stride={text}")


@pytest.mark.parametrize("text, expected", [("1e-5", 1e-5), ("0", 0.0), ("0.25", 0.25), ("1", 1.0), (".5", 0.5)])
def test_float_by_type(text, expected):
    value = _extract(f"model.min_score={text}").model.min_score
    assert value == expected and type(value) is float


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("True", True), ("YES", True), ("on", True), ("false", False), ("No", False), ("OFF", False)],
)
def test_bool_by_type(text, expected):
    assert _extract(f"show_progress={text}").show_progress is expected


@pytest.mark.parametrize("text", ["null", "Null", "NULL", "~", ""])
def test_optional_accepts_null_words(text):
    assert _extract(f"ray.address={text}").ray.address is None
    raw = apply_overrides({"distill": {"temperature": "3"}}, [f"distill={text}"])
    assert from_dict(TrainDistillOnly, raw).distill is None


@dataclass(frozen=True)
class TrainDistillOnly:
    distill: typing.Optional[DistillConfig] = None


def test_set_into_an_empty_section():
    raw = apply_overrides({"distill": ""}, ["distill.temperature=3"])
    assert from_dict(TrainDistillOnly, raw).distill == DistillConfig(temperature=3.0)


@dataclass(frozen=True)
class Mixed:
    level: typing.Literal[1, 2, 3] = 1
    mode: typing.Literal["a", "b"] = "a"
    table: dict[str, int] = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    extra: typing.Any = None
    widths: tuple[int, ...] = ()


def test_literal_dict_and_any_fields():
    raw = apply_overrides({}, ["level=2", "mode=b", "table={x: 0123, y: 1e3}", "names={NORP: no, X: 0123}",
                               "extra=[5, true, null, x, no]", "widths=[1, 2]"])
    cfg = from_dict(Mixed, raw)
    assert cfg.level == 2 and type(cfg.level) is int and cfg.mode == "b"
    assert cfg.table == {"x": 123, "y": 1000}
    assert cfg.names == {"NORP": "no", "X": "0123"}  # a bare dict (label maps): strings stay strings
    assert cfg.extra == [5, True, None, "x", False]  # Any: scalars typed as yaml.safe_load types them
    assert cfg.widths == (1, 2)
    with pytest.raises(ConfigError, match=r"^level: expected one of 1, 2, 3, found '4'"):
        from_dict(Mixed, apply_overrides({}, ["level=4"]))
    with pytest.raises(ConfigError, match=r"^table.x: expected an integer, found 'many'"):
        from_dict(Mixed, apply_overrides({}, ["table={x: many}"]))
    # values given as Python objects (not from YAML) still work
    assert from_dict(Mixed, {"level": 3, "table": {"a": 1}, "extra": {"k": 1.5}}).extra == {"k": 1.5}


def test_spacy_label_map_keeps_strings(tmp_path):
    from training.label import LabelConfig

    path = tmp_path / "label.yaml"
    path.write_text("teacher:\n  spacy:\n    label_map: {PERSON: PER, NORP: no, GPE: 0123}\n    weight: 5e-1\n",
                    encoding="utf-8")
    spacy = load(LabelConfig, path).teacher.spacy
    assert spacy.label_map == {"PERSON": "PER", "NORP": "no", "GPE": "0123"} and spacy.weight == 0.5


def test_loaded_config_has_plain_types(tmp_path):
    """No loader-internal str subclasses leak out: the config dumps with yaml.safe_dump."""
    from extract.core.config import dump_yaml

    cfg = _extract("input.id_column='x'", "ray.address='h:1'", path=ROOT / "configs" / "extract.yaml")
    dump_yaml(cfg, tmp_path / "out.yaml")
    again = load(ExtractConfig, tmp_path / "out.yaml")
    assert again == cfg


_PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_PRINTABLE)
def test_property_set_string_round_trips(s):
    """`--set input.id_column=<s>` gives exactly <s>; the one exception is a value that is a single
    quoted YAML scalar ('0123', "a b"), which gives the quoted text (as in a YAML file)."""
    try:
        value = _extract(f"input.id_column={s}").input.id_column
    except ConfigError:
        return
    assert type(value) is str
    if s[:1] in ("'", '"') and value != s:
        assert value == yaml.safe_load(s)
    else:
        assert value == s


@settings(max_examples=200, deadline=None)
@given(_PRINTABLE.filter(lambda s: s[:1] not in ("'", '"')))
def test_property_unquoted_set_string_round_trips_exactly(s):
    """Exactly as typed, except text YAML reads as a tag (`!`, `!!int 3`), which is refused as in a
    config file (tests/core/test_config_tags.py), with a message saying to quote it."""
    try:
        value = _extract(f"input.id_column={s}").input.id_column
    except ConfigError as exc:
        assert "YAML tags are not allowed" in str(exc) and "quote it" in str(exc)
        return
    assert value == s


@settings(max_examples=200, deadline=None)
@given(_PRINTABLE)
def test_property_non_string_field_is_value_or_config_error(s):
    try:
        cfg = _extract(f"input.shard_size={s}", f"input.text_columns={s}", f"ray.cpus_per_actor={s}")
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert type(cfg.input.shard_size) is int and isinstance(cfg.ray.cpus_per_actor, float)
    assert all(type(c) is str for c in cfg.input.text_columns)
