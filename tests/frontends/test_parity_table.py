"""scripts/parity_table.py end to end on the tiny model and the tiny CoNLL fixture: every row runs
(training evaluate, Extractor, NerbatchPipeline, spacy convert + evaluate, the plain pipeline, the
batch job), the equality checks hold, and the page is written."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import FIXTURES, ROOT


def test_the_parity_script_runs_every_front_end(tiny_model_dir, tmp_path):
    out = tmp_path / "parity.md"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "parity_table.py"), "--model", str(tiny_model_dir),
                          "--data", str(FIXTURES / "tiny_conll.txt"), "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    page = out.read_text(encoding="utf-8")
    assert "FAILED" not in page and page.count("| identical |") == 3  # NerbatchPipeline x2, the batch job
    for row in ("python -m training evaluate --context document", "`Extractor`", "pipeline_class=NerbatchPipeline",
                "python -m spacy evaluate", 'aggregation_strategy="simple"', "python -m extract run",
                "## Why the numbers differ"):
        assert row in page, row
    assert page.split("\n\n", 1)[1] in run.stdout  # printed too
