"""The one place that installs and restores the stop signals' handlers (SIGTERM, SIGINT): the job's
driver (extract/job/driver.py ``signals``), the service's CLI, and around ``ray.init``, which
installs handlers of its own (a sys.exit on SIGTERM) that must not outlive it."""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(handler: Callable[[int, Any], Any] | int) -> dict:
    """``handler`` for SIGTERM and SIGINT; the previous handlers, for ``restore``."""
    return {s: signal.signal(s, handler) for s in STOP_SIGNALS}


def restore(previous: dict) -> None:
    for s, h in previous.items():
        if h is not None and signal.getsignal(s) is not h:
            signal.signal(s, h)


@contextlib.contextmanager
def kept_handlers() -> Iterator[None]:
    """SIGTERM's and SIGINT's handlers as they were before the block, whatever it installed."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        restore(previous)
