"""A pod's health server on BLOOM_HEALTH_PORT: /healthz (live), /readyz (every local rank ready), /metrics.

It serves a `RankView` of each of the pod's local ranks: bloom-worker's launcher keeps them from its
ranks' reports (report.py); a rank started by another launcher (torchrun) serves its own view alone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@dataclass
class RankView:
    rank: int
    local_rank: int
    pid: int | None = None
    state: dict[str, object] = field(default_factory=lambda: State().snapshot())
    samples: list[Sample] = field(default_factory=list)
    last_report: float | None = None  # monotonic
    exit_code: int | None = None

    @property
    def ready(self) -> bool:
        s = self.state
        return bool(s["shard_loaded"] and s["communicator_up"] and s["error"] is None and self.exit_code is None)

    def report_age(self) -> float | None:
        return None if self.last_report is None else time.monotonic() - self.last_report

    def update(self, message: dict) -> None:
        self.state = message["state"]
        self.samples = [(str(n), dict(labels), float(v)) for n, labels, v in message["samples"]]
        self.last_report = time.monotonic()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def pod_samples(views: Sequence[RankView], metrics: Metrics) -> list[Sample]:
    """The pod's own series, then every rank's, each labelled with its rank."""
    out = metrics.samples()
    out.append(("bloom_pod_ready", {}, 1.0 if all(v.ready for v in views) else 0.0))
    for v in views:
        rank = {"rank": str(v.rank)}
        out.append(("bloom_worker_ready", rank, 1.0 if v.ready else 0.0))
        age = v.report_age()
        if age is not None:
            out.append(("bloom_worker_report_age_seconds", rank, age))
        out.extend((name, {**labels, **rank}, value) for name, labels, value in v.samples)
    return out


def start_health_server(
    bind: str, port: int, views: Callable[[], Sequence[RankView]], metrics: Metrics, identity: dict[str, str]
) -> QuietServer:
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
            if path == "/healthz":
                live = [
                    {
                        "rank": v.rank,
                        "local_rank": v.local_rank,
                        "pid": v.pid,
                        "phase": v.state["phase"],
                        "exit_code": v.exit_code,
                        "last_report_age_s": v.report_age(),
                    }
                    for v in ranks
                ]
                self._json(200, {"status": "ok", **identity, "ranks": live})
            elif path == "/readyz":
                ready = all(v.ready for v in ranks)
                per_rank = [{"rank": v.rank, "local_rank": v.local_rank, **v.state} for v in ranks]
                self._json(200 if ready else 503, {"ready": ready, **identity, "ranks": per_rank})
            elif path == "/metrics":
                text = render(pod_samples(ranks, metrics))
                self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(404, {"error": "not found"})

    server = QuietServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
