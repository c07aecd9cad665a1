"""Rank 0's HTTP API on BLOOM_HTTP_PORT: the plumbing (bodies, the API key, streams, metrics).

Routes: POST /v1/completions, /v1/chat/completions (openai_api.py), /generate, /generate_stream
(tgi_api.py), /debug/logits (BLOOM_DEBUG_API=1 only); GET /v1/models, /healthz, /readyz.

Bodies: Content-Length or Transfer-Encoding: chunked, at most `Limits.max_body_bytes` (413 without
reading the rest); malformed JSON is a 400. With an API key, every /v1/*, /generate* and /debug/* request
needs `Authorization: Bearer <key>` (401 otherwise); /healthz and /readyz stay open and say nothing of
requests. Every error is `{"error": {"message", "type", "param", "code"}}`; once a stream's headers are
out, an error is a last `data: {"error": ...}` event (then `data: [DONE]`), never a second response.
"""

from __future__ import annotations

import hmac
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .health import QuietServer, State
from .job import Job, Limits, Model, usage
from .metrics import Metrics
from .openai_api import models_list, parse_chat, parse_completion
from .runner import ClientGone, Engine, debug_logits, run
from .tgi_api import parse_generate
from .validate import ApiError, Body, refuse_unknown, token_ids

log = logging.getLogger("bloom_worker.api")

JOBS: dict[str, Callable[[Body, Model], Job]] = {
    "/v1/completions": parse_completion,
    "/v1/chat/completions": parse_chat,
    "/generate": lambda body, model: parse_generate(body, model, stream=False),
    "/generate_stream": lambda body, model: parse_generate(body, model, stream=True),
}
DEBUG_LOGITS = "/debug/logits"
OPEN_ROUTES = ("/healthz", "/readyz")
ROUTES = (*JOBS, DEBUG_LOGITS, "/v1/models", *OPEN_ROUTES)
READ_TIMEOUT_S = 30.0
DRAIN_S = 2.0


def route_of(path: str) -> str:
    """The metrics label: one of ROUTES, else "other" (never the raw path)."""
    path = path.split("?", 1)[0]
    return path if path in ROUTES else "other"


def authorized(header: str | None, key: str | None) -> bool:
    if key is None:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def read_api_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"the API key file {path} is empty")
    return key


def peer_closed(sock: socket.socket) -> bool:
    """The client closed (or reset) its connection; pipelined bytes are not a close. (A client that only
    shuts down its sending side reads as gone too, as with uvicorn: HTTP clients do not do that.)"""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Api:
    def __init__(self, state: State, metrics: Metrics, limits: Limits, api_key: str | None = None, debug: bool = False):
        self.state, self.metrics, self.limits = state, metrics, limits
        self.api_key, self.debug = api_key, debug
        self.created = int(time.time())
        self.engine: Engine | None = None
        self.model: Model | None = None

    def attach(self, engine: Engine, model: Model) -> None:
        self.model, self.engine = model, engine

    def serving(self) -> tuple[Engine, Model]:
        if self.engine is None or self.model is None or not self.state.ready:
            raise ApiError(503, "the group is not ready yet", type="server_error", code="unavailable")
        return self.engine, self.model


def start_api_server(bind: str, port: int, api: Api) -> QuietServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = READ_TIMEOUT_S

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        # --- plumbing ----------------------------------------------------------------------
        def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if self.unread:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            if self.unread:
                self._drain()

        def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json", headers)

        def _drain(self) -> None:
            """An answer sent before the body was read: close, but let the client finish sending first,
            so that it reads the answer instead of a reset connection."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(DRAIN_S)
                end = time.monotonic() + DRAIN_S
                while time.monotonic() < end and self.connection.recv(1 << 16):
                    pass
            except OSError:
                pass

        def _body(self) -> Body:
            limit = api.limits.max_body_bytes
            coding = self.headers.get("Transfer-Encoding")
            if coding is not None:
                if coding.strip().lower() != "chunked":
                    raise ApiError(400, f"Transfer-Encoding {coding!r} is not supported (only chunked)")
                raw = self._chunked(limit)
            else:
                length = self.headers.get("Content-Length")
                if length is None:
                    raise ApiError(411, "a body needs Content-Length or Transfer-Encoding: chunked")
                try:
                    n = int(length)
                except ValueError:
                    n = -1
                if n < 0:
                    raise ApiError(400, f"bad Content-Length {length!r}")
                if n > limit:
                    raise ApiError(413, f"body of {n} bytes exceeds the limit of {limit}")
                raw = self.rfile.read(n)
                if len(raw) < n:
                    raise ApiError(400, f"the body ended after {len(raw)} of {n} bytes")
            self.unread = False
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                raise ApiError(400, "body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "body must be a JSON object")
            return body

        def _chunked(self, limit: int) -> bytes:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ApiError(400, "malformed chunked body") from None
                if size == 0:
                    break
                if len(out) + size > limit:
                    raise ApiError(413, f"body exceeds the limit of {limit} bytes")
                out += self.rfile.read(size)
                self.rfile.readline(1024)  # the chunk's CRLF
            while self.rfile.readline(1024).strip():  # trailers
                pass
            return bytes(out)

        def _gone(self) -> bool:
            return peer_closed(self.connection)

        # --- routes ------------------------------------------------------------------------
        def _handle(self, method: str) -> None:
            started = time.monotonic()
            route = route_of(self.path)
            self.unread = method == "POST"
            status = 500
            try:
                status = self._route(method, route)
            except ApiError as e:
                status = e.status
                if e.status >= 500:
                    log.warning("%s %s: %d %s", method, route, e.status, e.message)
                self._error(e)
            except ClientGone:
                status = 499
                self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                status = 499
                self.close_connection = True
            except TimeoutError:
                status = 408
                self.close_connection = True
            except Exception as e:  # noqa: BLE001  # a bug: answer it, keep serving
                log.exception("%s %s failed", method, route)
                status = 500
                self._error(ApiError(500, f"internal error: {e}", type="server_error"))
            api.metrics.inc("bloom_worker_requests_total", labels={"route": route, "code": str(status)})
            api.metrics.observe("bloom_worker_request_seconds", time.monotonic() - started, {"route": route})

        def _error(self, e: ApiError) -> None:
            try:
                self._json(e.status, e.body(), e.headers)
            except OSError:  # the client is gone already
                self.close_connection = True

        def _route(self, method: str, route: str) -> int:
            if route == "other" or (route == DEBUG_LOGITS and not api.debug):
                raise ApiError(404, f"no route {self.path.split('?', 1)[0]}", code="not_found")
            want = "GET" if route in (*OPEN_ROUTES, "/v1/models") else "POST"
            if route not in OPEN_ROUTES and not authorized(self.headers.get("Authorization"), api.api_key):
                raise ApiError(401, "a valid API key is required (Authorization: Bearer <key>)", code="invalid_api_key")
            if method != want:
                raise ApiError(405, f"use {want} for {route}", code="method_not_allowed")
            if route == "/healthz":
                self._json(200, {"status": "ok"})
                return 200
            if route == "/readyz":
                ready = api.state.ready and api.engine is not None
                self._json(200 if ready else 503, {"ready": ready})
                return 200 if ready else 503
            if route == "/v1/models":
                self._json(200, models_list(api.serving()[1].name, api.created))
                return 200
            engine, model = api.serving()
            body = self._body()
            if route == DEBUG_LOGITS:
                refuse_unknown(body, ("input_ids",))
                ids = token_ids(body.get("input_ids"), model.vocab_size, "input_ids")
                model.check_length(len(ids), 0, "input_ids")
                self._json(200, {"logits": debug_logits(engine, ids, model, self._gone).tolist()})
                return 200
            job = JOBS[route](body, model)
            if job.stream:
                self._stream(engine, job, model)
            else:
                outs = run(engine, job, model, lambda chunk: None, self._gone)
                self._json(200, job.shape.response(outs, usage(job, outs)))
            return 200

        def _stream(self, engine: Engine, job: Job, model: Model) -> None:
            opened: list[bool] = []

            def write(data: bytes) -> None:
                self.wfile.write(b"data: " + data + b"\n\n")
                self.wfile.flush()

            def headers() -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                opened.append(True)

            try:
                outs = run(engine, job, model, lambda chunk: write(json.dumps(chunk).encode()), self._gone, headers)
                last = job.shape.usage_chunk(usage(job, outs)) if job.include_usage else None
                if last is not None:
                    write(json.dumps(last).encode())
            except ApiError as e:
                if not opened:  # before the headers (429): a plain answer
                    raise
                log.warning("stream of %s ended by %d %s", self.path, e.status, e.message)
                write(json.dumps(e.body()).encode())
            if job.shape.done_marker:
                write(b"[DONE]")

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    server = QuietServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    return server
