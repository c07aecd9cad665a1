"""Rank 0's HTTP API: OpenAI-compatible /v1/completions (streaming too) and /generate.

POST /v1/completions  {"prompt": str | [int] | [str] | [[int]], "max_tokens": 16, "temperature": 1.0,
                       "top_p": 1.0, "seed": int, "stream": false}
  -> {"id", "object": "text_completion", "created", "model", "choices": [{"index", "text",
      "token_ids", "finish_reason": "length"|"stop", "logprobs": null}], "usage": {...}}
  stream: text/event-stream of `data: {choices: [{"index", "text", "token_ids", "finish_reason"}]}`
  lines, then `data: [DONE]`.
POST /generate        {"input_ids": [int], "max_new_tokens": N, "temperature": 0, "top_p", "seed",
                       "stop_at_eos": true, "return_logits": false} -> {"output_ids": [...], "finish_reason"}
                       (+ "logits": [[float]*vocab]*prompt_len when return_logits)
                      or {"inputs": str, "parameters": {"max_new_tokens", "temperature", ...}}
                       -> {"generated_text", "output_ids", "finish_reason"}
GET  /v1/models, /healthz, /readyz
Invalid requests get 4xx with {"error": {"message", "type"}}; before the group is ready, 503.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from .engine import Engine, Request
from .health import QuietServer, State
from .metrics import Metrics
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_prompt_tokens: int = 2048
    max_new_tokens: int = 1024
    max_prompts: int = 8
    request_timeout_s: float = 600.0


class ApiError(Exception):
    def __init__(self, code: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.code, self.message, self.kind = code, message, kind


class Api:
    def __init__(self, state: State, metrics: Metrics, model_name: str, vocab_size: int, limits: Limits):
        self.state = state
        self.metrics = metrics
        self.model_name = model_name
        self.vocab_size = vocab_size
        self.limits = limits
        self.engine: Engine | None = None
        self.tokenizer: Tokenizer | None = None

    # --- validation ------------------------------------------------------------------------
    def _ids(self, value: object, what: str) -> list[int]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ApiError(400, f"{what} must be a non-empty list of integer token ids")
        bad = [v for v in value if v < 0 or v >= self.vocab_size]
        if bad:
            raise ApiError(400, f"{what} holds ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}")
        if len(value) > self.limits.max_prompt_tokens:
            raise ApiError(400, f"{what} has {len(value)} tokens; the limit is {self.limits.max_prompt_tokens}")
        return value

    def _text(self, value: str, what: str) -> list[int]:
        if self.tokenizer is None:
            raise ApiError(400, f"this model directory has no tokenizer; send {what} as token ids")
        if not value:
            raise ApiError(400, f"{what} is empty")
        return self._ids(self.tokenizer.encode(value), what)

    def _num(self, body: dict, key: str, default: float, lo: float, hi: float, integer: bool = False) -> float:
        v = body.get(key, default)
        if v is None:
            v = default
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            raise ApiError(400, f"{key} must be {'an integer' if integer else 'a number'}")
        if not lo <= v <= hi:
            raise ApiError(400, f"{key}={v} is outside [{lo:g}, {hi:g}]")
        return v

    def _params(self, p: dict, max_key: str, default_max: int, default_temp: float) -> dict:
        seed = p.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ApiError(400, "seed must be an integer")
        return {
            "max_new_tokens": int(self._num(p, max_key, default_max, 1, self.limits.max_new_tokens, integer=True)),
            "temperature": float(self._num(p, "temperature", default_temp, 0.0, 100.0)),
            "top_p": float(self._num(p, "top_p", 1.0, 1e-6, 1.0)),
            "seed": seed,
        }

    def _engine(self) -> Engine:
        if self.engine is None or not self.state.ready:
            raise ApiError(503, "the group is not ready yet", "unavailable")
        return self.engine

    # --- endpoints -------------------------------------------------------------------------
    def prompts(self, body: dict) -> list[list[int]]:
        prompt = body.get("prompt")
        if prompt is None:
            raise ApiError(400, "prompt is required")
        if isinstance(prompt, str):
            return [self._text(prompt, "prompt")]
        if isinstance(prompt, list) and prompt and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return [self._ids(prompt, "prompt")]
        if isinstance(prompt, list) and prompt and len(prompt) <= self.limits.max_prompts:
            out = []
            for i, p in enumerate(prompt):
                if isinstance(p, str):
                    out.append(self._text(p, f"prompt[{i}]"))
                else:
                    out.append(self._ids(p, f"prompt[{i}]"))
            return out
        raise ApiError(
            400,
            f"prompt must be a string, a list of token ids, or a list of at most {self.limits.max_prompts} of those",
        )

    def run(self, ids: list[int], params: dict, want_logits: bool = False, stop_at_eos: bool = True) -> Request:
        engine = self._engine()
        return engine.submit(Request(ids=ids, want_logits=want_logits, stop_at_eos=stop_at_eos, **params))

    def collect(self, req: Request) -> tuple[list[int], str, list | None]:
        out: list[int] = []
        logits = None
        deadline = time.monotonic() + self.limits.request_timeout_s
        while True:
            kind, value = req.events.get(timeout=max(0.1, deadline - time.monotonic()))
            if kind == "token":
                out.append(int(value))  # type: ignore[arg-type]
            elif kind == "logits":
                logits = value  # type: ignore[assignment]
            elif kind == "error":
                raise ApiError(500, f"generation failed: {value}", "server_error")
            else:
                return out, str(value), logits


def start_api_server(bind: str, port: int, api: Api) -> QuietServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _json(self, code: int, obj: object) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _count(self, path: str, code: int, started: float) -> None:
            api.metrics.inc("bloom_worker_requests_total", labels={"path": path, "code": str(code)})
            api.metrics.observe("bloom_worker_request_seconds", time.monotonic() - started)

        def _body(self) -> dict:
            raw_len = self.headers.get("Content-Length")
            if raw_len is None:
                raise ApiError(411, "Content-Length is required")
            try:
                n = int(raw_len)
            except ValueError:
                raise ApiError(400, "bad Content-Length") from None
            if n > api.limits.max_body_bytes:
                self.close_connection = True
                raise ApiError(413, f"body of {n} bytes exceeds the limit of {api.limits.max_body_bytes}")
            try:
                body = json.loads(self.rfile.read(n) or b"null")
            except ValueError:
                raise ApiError(400, "body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "body must be a JSON object")
            return body

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/v1/models":
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": api.model_name, "object": "model", "owned_by": "bloom-operator"}],
                    },
                )
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                self._json(200 if api.state.ready else 503, {"ready": api.state.ready})
            elif path in ("/v1/completions", "/generate"):
                self._json(405, {"error": {"message": f"use POST for {path}", "type": "invalid_request_error"}})
            else:
                self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            started = time.monotonic()
            code = 200
            try:
                if path in ("/v1/completions", "/generate") and (api.engine is None or not api.state.ready):
                    self.close_connection = True
                    raise ApiError(503, "the group is not ready yet", "unavailable")
                if path == "/v1/completions":
                    code = self._completions(self._body())
                elif path == "/generate":
                    code = self._generate(self._body())
                else:
                    raise ApiError(404, f"no route {path}")
            except ApiError as e:
                code = e.code
                self._json(e.code, {"error": {"message": e.message, "type": e.kind}})
            except (BrokenPipeError, ConnectionResetError):  # the client went away (e.g. mid-stream)
                code = 499
                self.close_connection = True
            except Exception as e:  # noqa: BLE001
                code = 500
                self._json(500, {"error": {"message": str(e), "type": "server_error"}})
            self._count(path, code, started)

        def _generate(self, body: dict) -> int:
            if "input_ids" in body:
                ids = api._ids(body["input_ids"], "input_ids")
                params = api._params(body, "max_new_tokens", 16, 0.0)
                want = bool(body.get("return_logits", False))
                req = api.run(ids, params, want_logits=want, stop_at_eos=bool(body.get("stop_at_eos", True)))
                out, reason, logits = api.collect(req)
                resp: dict = {"output_ids": out, "finish_reason": reason}
                if want:
                    resp["logits"] = logits
                self._json(200, resp)
                return 200
            if "inputs" in body:
                if not isinstance(body["inputs"], str):
                    raise ApiError(400, "inputs must be a string")
                p = body.get("parameters") or {}
                if not isinstance(p, dict):
                    raise ApiError(400, "parameters must be an object")
                ids = api._text(body["inputs"], "inputs")
                params = api._params(p, "max_new_tokens", 16, 0.0)
                out, reason, _ = api.collect(api.run(ids, params))
                text = api.tokenizer.decode(out) if api.tokenizer else ""
                self._json(200, {"generated_text": text, "output_ids": out, "finish_reason": reason})
                return 200
            raise ApiError(400, "body needs input_ids (token ids) or inputs (text)")

        def _completions(self, body: dict) -> int:
            prompts = api.prompts(body)
            params = api._params(body, "max_tokens", 16, 1.0)
            if body.get("n", 1) != 1:
                raise ApiError(400, "only n=1 is supported")
            stream = bool(body.get("stream", False))
            reqs = [api.run(ids, params) for ids in prompts]
            cid = "cmpl-" + uuid.uuid4().hex[:24]
            created = int(time.time())
            decode = (lambda ids: api.tokenizer.decode(ids)) if api.tokenizer else (lambda ids: "")
            if not stream:
                choices = []
                total = 0
                for i, r in enumerate(reqs):
                    out, reason, _ = api.collect(r)
                    total += len(out)
                    choices.append(
                        {"index": i, "text": decode(out), "token_ids": out, "logprobs": None, "finish_reason": reason}
                    )
                prompt_tokens = sum(len(p) for p in prompts)
                self._json(
                    200,
                    {
                        "id": cid,
                        "object": "text_completion",
                        "created": created,
                        "model": api.model_name,
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": total,
                            "total_tokens": prompt_tokens + total,
                        },
                    },
                )
                return 200
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            lock = threading.Lock()

            def emit(obj: object) -> None:
                data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
                with lock:
                    self.wfile.write(data)
                    self.wfile.flush()

            for i, r in enumerate(reqs):
                seen: list[int] = []
                text_so_far = ""
                while True:
                    kind, value = r.events.get(timeout=api.limits.request_timeout_s)
                    chunk = {"id": cid, "object": "text_completion", "created": created, "model": api.model_name}
                    if kind == "token":
                        seen.append(int(value))  # type: ignore[arg-type]
                        text = decode(seen)
                        delta, text_so_far = text[len(text_so_far) :], text
                        emit(
                            {
                                **chunk,
                                "choices": [
                                    {
                                        "index": i,
                                        "text": delta,
                                        "token_ids": [int(value)],
                                        "logprobs": None,
                                        "finish_reason": None,
                                    }
                                ],
                            }
                        )  # type: ignore[arg-type]
                    elif kind == "error":
                        emit({"error": {"message": str(value), "type": "server_error"}})
                        break
                    elif kind == "done":
                        emit(
                            {
                                **chunk,
                                "choices": [
                                    {"index": i, "text": "", "token_ids": [], "logprobs": None, "finish_reason": value}
                                ],
                            }
                        )
                        break
            emit(b"[DONE]")
            return 200

    server = QuietServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    return server
