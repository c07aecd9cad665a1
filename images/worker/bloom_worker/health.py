"""A pod's health server on BLOOM_HEALTH_PORT: /healthz, /livez, /readyz, /metrics.

It serves a `RankView` of each of the pod's local ranks: bloom-worker's launcher keeps them from its
ranks' reports (report.py); a rank started by another launcher (torchrun) serves its own view alone.

* /healthz: 200 while the server answers (the launcher process lives), with every rank's picture;
* /livez: 200 unless a local rank is stuck: it exited, it has not reported for `Bounds.liveness`
  seconds (stopped, or stuck holding the GIL), or its engine loop has made no progress for
  `Bounds.liveness` seconds (blocked in a collective or in the device). The engine's `Progress` is
  beaten by the engine thread itself, from the idle loop too, so an idle group stays live and a rank
  blocked inside a collective does not;
* /readyz: 200 only when every local rank has its shard loaded and its communicator up, and none is
  stuck by the shorter `Bounds.readiness` (a stalled group leaves the endpoints before it is killed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from .metrics import Metrics, Sample, render


class State:
    """A rank's own state. `phase` walks: starting, loading, rendezvous, ready (or failed)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.phase = "starting"
        self.shard_loaded = False
        self.communicator_up = False
        self.error: str | None = None

    def set(self, **kw: object) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)
        self.changed.set()

    @property
    def ready(self) -> bool:
        return self.shard_loaded and self.communicator_up and self.error is None

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "phase": self.phase,
                "shard_loaded": self.shard_loaded,
                "communicator_up": self.communicator_up,
                "error": self.error,
            }


class _Op:
    """`with progress.inside(name)`: the engine thread is blocked in `name` (a collective, the device)."""

    __slots__ = ("name", "progress")

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress, self.name = progress, name

    def __enter__(self) -> None:
        p = self.progress
        p._saved.append(p.current)
        p.current = (self.name, p.clock())

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        p = self.progress
        p.current = p._saved.pop()
        if t is None:
            p.beat()  # a collective that completed is progress


class Progress:
    """The engine loop's heartbeat, beaten only by the engine thread: at every turn of the leader's and
    the followers' loops (idle ones too: the leader broadcasts a header every second), at every decode
    step and when a collective completes. A rank blocked in a collective or in the device stops beating,
    while its reporter thread goes on reporting the growing age. Read from other threads (snapshot):
    every field is replaced whole, never mutated."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: float | None = None  # None until the engine loop runs
        self.current: tuple[str, float] | None = None  # the op the engine thread is in, since when
        self._saved: list[tuple[str, float] | None] = []
        self._ops: dict[str, _Op] = {}

    def beat(self) -> None:
        self.last = self.clock()

    def inside(self, name: str) -> _Op:
        op = self._ops.get(name)
        if op is None:
            op = self._ops[name] = _Op(self, name)
        return op

    def snapshot(self) -> dict[str, object]:
        now, last, current = self.clock(), self.last, self.current
        return {
            "progress_age_s": None if last is None else now - last,
            "op": None if current is None else current[0],
            "op_age_s": None if current is None else now - current[1],
        }


NO_PROGRESS: dict[str, object] = {"progress_age_s": None, "op": None, "op_age_s": None}


@dataclass(frozen=True)
class Bounds:
    """Seconds without a report or without engine progress after which a rank is stuck: for /livez, and
    (shorter) for /readyz. BLOOM_LIVENESS_TIMEOUT_SECONDS, BLOOM_READINESS_TIMEOUT_SECONDS."""

    liveness: float = 90.0
    readiness: float = 10.0


@dataclass
class RankView:
    rank: int
    local_rank: int
    pid: int | None = None
    state: dict[str, object] = field(default_factory=lambda: State().snapshot())
    samples: list[Sample] = field(default_factory=list)
    progress: dict[str, object] = field(default_factory=lambda: dict(NO_PROGRESS))
    last_report: float | None = None  # monotonic
    exit_code: int | None = None

    @property
    def ready(self) -> bool:
        s = self.state
        return bool(s["shard_loaded"] and s["communicator_up"] and s["error"] is None and self.exit_code is None)

    def report_age(self, now: float | None = None) -> float | None:
        return None if self.last_report is None else (time.monotonic() if now is None else now) - self.last_report

    def _age(self, key: str, now: float | None) -> float | None:
        """An age the rank reported, plus the age of that report."""
        reported = self.progress.get(key)
        if reported is None:
            return None
        return float(reported) + (self.report_age(now) or 0.0)  # type: ignore[arg-type]

    def progress_age(self, now: float | None = None) -> float | None:
        """Seconds since the engine loop last made progress; None before it runs."""
        return self._age("progress_age_s", now)

    def op_age(self, now: float | None = None) -> float | None:
        return self._age("op_age_s", now)

    def stuck(self, bound: float, now: float | None = None) -> str | None:
        """Why this rank is not live by `bound` seconds, or None when it is."""
        now = time.monotonic() if now is None else now
        if self.exit_code is not None:
            return f"exited with code {self.exit_code}"
        # before its first report a rank is starting (importing torch): the startup probe's time
        if self.last_report is not None and now - self.last_report > bound:
            silent = now - self.last_report
            return f"no report for {silent:.1f}s (the process is stopped, or stuck holding the GIL)"
        age = self.progress_age(now)
        if age is not None and age > bound:
            op, op_age = self.progress.get("op"), self.op_age(now)
            inside = f", blocked in {op} for {op_age:.1f}s" if op is not None and op_age is not None else ""
            return f"engine loop made no progress for {age:.1f}s{inside}"
        return None

    def update(self, message: dict) -> None:
        self.state = message["state"]
        self.samples = [(str(n), dict(labels), float(v)) for n, labels, v in message["samples"]]
        progress = dict(message.get("progress") or NO_PROGRESS)
        self.last_report = time.monotonic()  # before the ages it dates: a reader in between sees them younger
        self.progress = progress


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def pod_ready(views: Sequence[RankView], bounds: Bounds, now: float) -> bool:
    return all(v.ready and v.stuck(min(bounds.readiness, bounds.liveness), now) is None for v in views)


def pod_samples(views: Sequence[RankView], metrics: Metrics, bounds: Bounds) -> list[Sample]:
    """The pod's own series, then every rank's, each labelled with its rank."""
    now = time.monotonic()
    out = metrics.samples()
    out.append(("bloom_pod_ready", {}, 1.0 if pod_ready(views, bounds, now) else 0.0))
    out.append(("bloom_pod_live", {}, 1.0 if all(v.stuck(bounds.liveness, now) is None for v in views) else 0.0))
    for v in views:
        rank = {"rank": str(v.rank)}
        out.append(("bloom_worker_ready", rank, 1.0 if v.ready else 0.0))
        age = v.report_age(now)
        if age is not None:
            out.append(("bloom_worker_report_age_seconds", rank, age))
        progress = v.progress_age(now)
        if progress is not None:
            out.append(("bloom_worker_progress_age_seconds", rank, progress))
        out.extend((name, {**labels, **rank}, value) for name, labels, value in v.samples)
    return out


def rank_liveness(v: RankView, bound: float, now: float) -> dict[str, object]:
    return {
        "rank": v.rank,
        "local_rank": v.local_rank,
        "pid": v.pid,
        "phase": v.state["phase"],
        "exit_code": v.exit_code,
        "last_report_age_s": v.report_age(now),
        "progress_age_s": v.progress_age(now),
        "op": v.progress.get("op"),
        "op_age_s": v.op_age(now),
        "stuck": v.stuck(bound, now),
    }


def start_health_server(
    bind: str,
    port: int,
    views: Callable[[], Sequence[RankView]],
    metrics: Metrics,
    identity: dict[str, str],
    bounds: Bounds | None = None,
) -> QuietServer:
    bounds = bounds or Bounds()
    readiness = min(bounds.readiness, bounds.liveness)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: object) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            ranks = views()
            now = time.monotonic()
            if path == "/healthz":
                live = [rank_liveness(v, bounds.liveness, now) for v in ranks]
                self._json(200, {"status": "ok", **identity, "ranks": live})
            elif path == "/livez":
                per_rank = [rank_liveness(v, bounds.liveness, now) for v in ranks]
                live = all(r["stuck"] is None for r in per_rank)
                body = {"live": live, "timeout_s": bounds.liveness, **identity, "ranks": per_rank}
                self._json(200 if live else 503, body)
            elif path == "/readyz":
                per_rank = [
                    {"rank": v.rank, "local_rank": v.local_rank, **v.state, "stuck": v.stuck(readiness, now)}
                    for v in ranks
                ]
                ready = all(v.ready for v in ranks) and all(r["stuck"] is None for r in per_rank)
                self._json(
                    200 if ready else 503, {"ready": ready, "timeout_s": readiness, **identity, "ranks": per_rank}
                )
            elif path == "/metrics":
                text = render(pod_samples(ranks, metrics, bounds))
                self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(404, {"error": "not found"})

    server = QuietServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
