"""Every rank's health server: /healthz (live), /readyz (shard loaded and communicator up), /metrics."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .metrics import Metrics


class State:
    """What the probes report. `phase` walks: starting, loading, rendezvous, ready (or failed)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase = "starting"
        self.shard_loaded = False
        self.communicator_up = False
        self.error: str | None = None

    def set(self, **kw: object) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

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


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_health_server(bind: str, port: int, state: State, metrics: Metrics, identity: dict[str, str]) -> QuietServer:
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

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, json.dumps({"status": "ok", **identity}).encode(), "application/json")
            elif path == "/readyz":
                snap = state.snapshot()
                ready = state.ready
                self._send(
                    200 if ready else 503, json.dumps({"ready": ready, **snap, **identity}).encode(), "application/json"
                )
            elif path == "/metrics":
                metrics.set("bloom_worker_ready", 1.0 if state.ready else 0.0)
                self._send(200, metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

    server = QuietServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
