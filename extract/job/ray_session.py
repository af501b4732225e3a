"""Ray's lifecycle for the batch job: start an embedded local Ray or join a cluster (``init``),
keep its INFO lines in its own log files (``log_dir``; ``NERBATCH_RAY_LOG=info`` shows them), put
back the driver's SIGTERM handler that ``ray.init`` replaces, pass Ray Data's own context to its
actors by value (``_inline``: ray-project/ray#53727) and stop what was started (``shutdown``)."""
from __future__ import annotations

import logging
import os
import signal

from extract.core.job_config import RayConfig
from extract.core.signals import kept_handlers


FORWARDED_ENV = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "HF_HUB_OFFLINE")
LOG_ENV = "NERBATCH_RAY_LOG"  # "info": Ray's INFO lines on the console too (default: warnings and errors)

_started = False  # whether init() started (or joined) Ray, so a run stopped early shuts it down


def _verbose() -> bool:
    return os.environ.get(LOG_ENV, "").strip().lower() in ("info", "debug", "1", "true", "yes")


def log_dir() -> str | None:
    """Where this driver's Ray session writes its logs (Ray Data's ray-data*.log among them)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001 - what ray.init made
    return os.path.join(node.get_session_dir_path(), "logs") if node is not None else None


def init(cfg: RayConfig) -> None:
    global _started
    import ray

    if ray.is_initialized():
        return
    _started = True  # from here on: a failed or interrupted start is shut down too (``shutdown``)
    stopped = None
    with kept_handlers():  # the driver's own, not ray.init's sys.exit on SIGTERM
        try:
            _start(cfg)
        except SystemExit as exc:  # SIGTERM while ray.init ran: its own handler's sys.exit(SIGTERM)
            if exc.code != signal.SIGTERM:
                raise
            stopped = exc
    if stopped is not None:
        os.kill(os.getpid(), signal.SIGTERM)  # the same signal once more, to the driver's own handler
        raise stopped


def _start(cfg: RayConfig) -> None:
    import ray

    # When a node dies, Ray first sees its actors as "temporarily unavailable" and retries their
    # tasks at once, using up ray.max_task_retries before it declares the node dead (~15 s).
    # Spacing those retries out (measured with scripts/cluster_check.sh) lets the shard move on.
    os.environ.setdefault("RAY_task_actor_unavailable_retry_delay_base_ms", "2000")
    os.environ.setdefault("RAY_task_actor_unavailable_retry_max_delay_ms", "10000")
    kwargs = {"ignore_reinit_error": True, "log_to_driver": True,
              "logging_level": logging.INFO if _verbose() else logging.WARNING}
    # Workers of a cluster we join do not see this shell's object-store settings: pass them on
    # (the embedded Ray's workers inherit them anyway).
    forward = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    if forward and (cfg.address or os.environ.get("RAY_ADDRESS")):
        kwargs["runtime_env"] = {"env_vars": forward}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)  # joining a cluster: the user's RAY_AUTH_MODE holds
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        # Token auth is on by default in Ray 2.60; an embedded single-user cluster does not need it.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", include_dashboard=False, num_cpus=cfg.num_cpus or None, **kwargs)


def shutdown() -> None:
    """Shut down the Ray that ``init`` started (nothing when Ray was running before)."""
    global _started
    import ray

    if _started:
        _started = False
        ray.shutdown()


def _quiet() -> None:
    """Ray Data's INFO lines off the console (its log files keep them), and its warning that
    progress bars are off (the job draws its own) not shown at all; nothing when NERBATCH_RAY_LOG
    asks for them."""
    from ray.util.debug import log_once

    log_once("ray_data_progress_manager_disabled")  # taken here: Ray Data's own warning never fires
    if _verbose():
        return
    from ray.data._internal.logging import SessionFileHandler

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler) and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)


def _inline() -> None:
    """Ray Data's actor pool passes its DataContext and MapTransformer to each actor (and the
    context to each task) by value, not as refs from ``ray.put``: see the module docstring. Only
    where this Ray Data has those two properties (2.60); otherwise nothing changes."""
    from ray.data._internal.execution.operators import actor_pool_map_operator as apm

    op = getattr(apm, "ActorPoolMapOperator", None)
    if op is None or getattr(op, "_nerbatch_inline", False):
        return
    if not all(hasattr(op, a) for a in ("_map_transformer_ref", "_data_context_ref", "data_context")):
        return
    op._map_transformer_ref = property(lambda self: self._map_transformer)
    op._data_context_ref = property(lambda self: self.data_context)
    op._nerbatch_inline = True
