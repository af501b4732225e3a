from dataclasses import dataclass, field
from pathlib import Path

import pytest

from extract.config import ConfigError, apply_overrides, from_dict, load
from extract.job_config import ExtractConfig
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


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
def test_every_config_in_configs_loads(path, monkeypatch, tiny_model_dir):
    """Every committed YAML parses into its typed config; paths to data and training outputs that
    only exist on a development machine are pointed at test fixtures."""
    from training.label import LabelConfig

    monkeypatch.chdir(ROOT)
    fixture = str(ROOT / "tests" / "fixtures" / "tiny_conll.txt")
    if path.name.startswith("extract"):
        cfg = load(ExtractConfig, path, [f"model.path={tiny_model_dir}"])
        assert cfg.runner == "ray" and cfg.model.labels == ("PER", "LOC", "ORG")
    elif path.name.startswith("label"):
        cfg = load(LabelConfig, path, [f"teacher.models=[{tiny_model_dir}]"])
        assert cfg.input.text_columns == ("title", "body")
    else:
        cfg = load(TrainConfig, path, [f"data.train={fixture}", f"data.dev={fixture}", "data.silver=[]"])
        assert cfg.optim.lr < 1e-3  # "5e-5" in YAML became a float
        assert (cfg.distill is not None) == path.name.startswith("distill")
