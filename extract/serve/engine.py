"""The service's model: extract.api.Extractor built from the serve config's model, inference and
funnel sections, the way the batch job reads them (extract/job/entities.py): the same loading,
sanitising, windows, forward passes, window merging, decoding and calibration."""
from __future__ import annotations

import dataclasses

from extract.serve.config import ServeConfig


def check_model(cfg: ServeConfig) -> tuple[str, str]:
    """(local model dir, model id), refusing a folder that is no model or lacks a wanted label
    before Ray starts (ValueError / FileNotFoundError with the fix)."""
    from extract.model.check import check_model as check
    from extract.model.loaded import model_id

    path = check(cfg.model.path, cfg.model.labels, cfg.inference.engine, "model.labels")
    return str(path), model_id(path)


def build_extractor(cfg: ServeConfig, threads: int | None = None):
    from extract.api import Extractor
    from extract.model.files import local_model_dir
    from extract.model.load import load

    inf, m = cfg.inference, cfg.model
    loaded = load(local_model_dir(m.path), inf.device, inf.dtype, cfg.threads if threads is None else threads,
                  inf.engine)
    settings = dict(loaded.settings)
    if m.max_length:  # as the job: 0 = the model's, -1 = the model's stride
        settings["max_length"] = m.max_length
    if m.stride >= 0:
        settings["stride"] = m.stride
    loaded = dataclasses.replace(loaded, settings=settings)
    funnel = cfg.funnel.rule if cfg.funnel.enabled else None
    return Extractor(loaded, list(m.labels), m.min_score, inf.batch_size, inf.batch_tokens, funnel)
