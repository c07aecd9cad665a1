"""Requests that fail without taking the group down, on a real TP=2 group (two pods of one rank): past
their deadline (BLOOM_REQUEST_TIMEOUT_SECONDS) a request is a 504, a stream ends with an error event and
`[DONE]` (never a second response after the SSE headers); a failed forward pass (out of memory, injected
with the test-only BLOOM_DEBUG_FAIL_PASS_TOKENS) fails only its request with 503; the next request is
answered normally."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from api_helpers import api_group, events, post
from worker_helpers import Group

TIMEOUT_S = 1.5
FAIL_TOKENS = 37  # a pass of exactly this many tokens raises out of memory on every rank


@pytest.fixture(scope="module")
def served(shards_a: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Group, str]]:
    optional = {"BLOOM_MAX_CONTEXT": "16384", "BLOOM_DEBUG_FAIL_PASS_TOKENS": str(FAIL_TOKENS)}
    with pytest.MonkeyPatch.context() as env:  # not a contract variable (yet): the pods inherit it
        env.setenv("BLOOM_REQUEST_TIMEOUT_SECONDS", str(TIMEOUT_S))
        g, key = api_group(shards_a[2], 2, tmp_path_factory.mktemp("failures"), optional=optional)
    try:
        yield g.wait_ready(120), key
    finally:
        g.stop()


LONG = {"prompt": [5, 6, 7], "max_tokens": 16000, "temperature": 0, "ignore_eos": True}


def normal(served: tuple[Group, str]) -> None:
    g, key = served
    r = post(g, key, "/v1/completions", {"prompt": [5, 6], "max_tokens": 4, "temperature": 0, "ignore_eos": True})
    assert r.status_code == 200 and len(r.json()["choices"][0]["token_ids"]) == 4, r.text


def test_past_its_deadline_a_request_is_a_504(served: tuple[Group, str]) -> None:
    g, key = served
    started = time.monotonic()
    r = post(g, key, "/v1/completions", LONG)
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout", r.text
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 5
    normal(served)


def test_past_its_deadline_a_stream_ends_with_an_error_event(served: tuple[Group, str]) -> None:
    g, key = served
    r = post(g, key, "/v1/completions", {**LONG, "stream": True}, stream=True)
    assert r.status_code == 200
    lines = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert all(line.startswith("data: ") for line in lines), "only events: never a second response"
    payloads = [line[len("data: ") :] for line in lines]
    assert payloads[-1] == "[DONE]" and len(payloads) > 3
    last = json.loads(payloads[-2])
    assert last["error"]["code"] == "timeout", last
    assert all("choices" in json.loads(p) for p in payloads[:-2])
    normal(served)


def test_a_failed_pass_fails_only_its_request(served: tuple[Group, str]) -> None:
    g, key = served
    prompt = list(range(10, 10 + FAIL_TOKENS))
    r = post(g, key, "/v1/completions", {"prompt": prompt, "max_tokens": 4})
    assert r.status_code == 503 and "out of memory" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["type"] == "server_error"
    normal(served)
    streamed = events(post(g, key, "/v1/completions", {"prompt": prompt, "max_tokens": 4, "stream": True}, stream=True))
    assert streamed[-1] == "[DONE]" and "out of memory" in json.loads(streamed[-2])["error"]["message"]
    normal(served)
    for pod in g.pods:
        assert requests.get(pod.url("/readyz"), timeout=5).status_code == 200
