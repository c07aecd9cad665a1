"""The channel between bloom-worker's launcher and its rank processes.

Each rank inherits the write end of a pipe (its fd in BLOOM_REPORT_FD) and writes one JSON line per
report: its state, its metric samples and its engine loop's progress (the ages, computed when the report
is written: no clock is shared), at once on every state change and at least every second. The reports
come from a thread of their own, so they go on while the engine thread is blocked: they then carry a
growing progress age, which is what tells a stuck rank (health.Progress) from a silent one. The launcher
reads each pipe into a `RankView`, the pod's health server's picture of that rank. A rank whose write
fails has lost its launcher and exits at once.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from typing import IO

from .health import Progress, RankView, State
from .metrics import Metrics

log = logging.getLogger("bloom_worker.report")

HEARTBEAT_S = 1.0
PR_SET_PDEATHSIG = 1


def message(state: State, metrics: Metrics, progress: Progress) -> dict:
    return {"state": state.snapshot(), "samples": metrics.samples(), "progress": progress.snapshot()}


def die_with_parent() -> None:
    """SIGKILL this process when the launcher dies, even by SIGKILL (Linux only; elsewhere the next
    report's broken pipe ends it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_reporter(fd: int, state: State, metrics: Metrics, progress: Progress) -> threading.Thread:
    out = os.fdopen(fd, "wb", buffering=0)

    def loop() -> None:
        while True:
            state.changed.clear()
            try:
                out.write(json.dumps(message(state, metrics, progress)).encode() + b"\n")
            except OSError as e:  # the launcher is gone: so is the pod
                log.error("lost the launcher (%s); exiting", e)
                os._exit(1)
            state.changed.wait(HEARTBEAT_S)

    thread = threading.Thread(target=loop, name="report", daemon=True)
    thread.start()
    return thread


def start_reader(stream: IO[bytes], view: RankView) -> threading.Thread:
    def loop() -> None:
        for line in stream:
            try:
                view.update(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("rank %d sent a bad report: %s", view.rank, e)
        stream.close()

    thread = threading.Thread(target=loop, name=f"read-rank{view.rank}", daemon=True)
    thread.start()
    return thread
