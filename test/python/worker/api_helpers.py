"""Helpers of the API tests: groups with an API key and the debug hooks, raw HTTP, SSE streams."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import requests

from worker_helpers import Group, launch


def api_group(model_dir: Path, world: int, logdir: Path, **kw: object) -> tuple[Group, str]:
    """A group whose API needs a key (BLOOM_API_KEY_FILE) and serves /debug/logits (BLOOM_DEBUG_API=1)."""
    key = "sk-" + secrets.token_hex(16)
    logdir.mkdir(parents=True, exist_ok=True)
    key_file = logdir / "api-key"
    key_file.write_text(key + "\n")
    optional = {"BLOOM_API_KEY_FILE": str(key_file), "BLOOM_DEBUG_API": "1", **kw.pop("optional", {})}  # type: ignore[dict-item]
    g = launch(model_dir, world, logdir, optional=optional, **kw)  # type: ignore[arg-type]
    return g, key


def post(g: Group, key: str | None, path: str, body: object, **kw: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(g.api(path), json=body, headers=headers, timeout=120, **kw)  # type: ignore[arg-type]


def events(r: requests.Response) -> list[str]:
    """The `data:` payloads of a server-sent event stream."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    return [line[len("data: ") :] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]


def chunks(r: requests.Response) -> list[dict]:
    payloads = events(r)
    assert payloads[-1] == "[DONE]", payloads[-3:]
    return [json.loads(p) for p in payloads[:-1]]


def raw_http(g: Group, request: bytes, timeout: float = 30) -> bytes:
    """Send bytes as they are; the answer until the server closes or `timeout`."""
    host, port = g.http.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(1 << 16):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
        return out


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def metric(text: str, series: str) -> float:
    """The value of one exposition line (`name{labels}`), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
