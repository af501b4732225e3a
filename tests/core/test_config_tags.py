"""A YAML tag anywhere in a config is refused with one line (exit 2); nothing it names is run."""
from __future__ import annotations

import pytest

from extract.__main__ import main
from extract.core.config import ConfigError, load
from extract.core.job_config import ExtractConfig

TAGGED = [
    "input:\n  text_columns: !!python/object/apply:os.system [\"touch {marker}\"]\n",
    "input:\n  text_columns: [text, !!python/name:os.system '']\n",
    "model: !!map {{path: data/models/default}}\n",
    "!!python/object:builtins.dict {{}}\n",
    "input:\n  id_column: !!str id\n",
    "input:\n  id_column: !custom id\n",
]


@pytest.mark.parametrize("body", TAGGED)
def test_a_tag_anywhere_is_refused_and_nothing_runs(body, tmp_path):
    marker = tmp_path / "ran"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(body.format(marker=marker))
    with pytest.raises(ConfigError, match="YAML tags are not allowed") as exc:
        load(ExtractConfig, cfg)
    assert "line " in str(exc.value)
    assert not marker.exists()


def test_the_cli_exits_2_with_one_line(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input:\n  text_columns: !!python/object/apply:os.system [text]\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "!!python/object/apply:os.system" in err[0] and "line 2" in err[0]


def test_a_tag_in_a_set_value_is_refused(tmp_path, capsys):
    assert main(["run", "--set", "input.id_column=!!python/name:os.system", "--set",
                 f"output.path={tmp_path / 'out'}"]) == 2
    assert "YAML tags are not allowed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_plain_and_quoted_values_still_load(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input:\n  id_column: '!!not a tag'\n  text_columns: [title, body]\n")
    c = load(ExtractConfig, cfg)
    assert c.input.id_column == "!!not a tag" and list(c.input.text_columns) == ["title", "body"]
