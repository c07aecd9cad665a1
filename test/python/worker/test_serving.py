"""Continuous batching in a real group (one pod of two rank processes on gloo, TP=2), through the HTTP
API: concurrency without changing any request's tokens, short requests overtaking long ones, the
queue bound, cancellation on disconnect, and a failed pass (injected on every rank) that fails only
its request while the group keeps serving."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from worker_helpers import Group

PROMPTS = [[5 + i % 7, 100 - i, 42 + 3 * i, *range(10, 10 + (i * 5) % 37)] for i in range(16)]
LENGTHS = [4 + (i * 7) % 29 for i in range(16)]


def generate(group: Group, ids: list[int], n: int) -> list[int]:
    body = {"input_ids": ids, "max_new_tokens": n, "temperature": 0, "stop_at_eos": False}
    r = requests.post(group.api("/generate"), json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["output_ids"]


def stream(group: Group, ids: list[int], n: int) -> requests.Response:
    body = {"prompt": ids, "max_tokens": n, "temperature": 0, "stream": True}
    r = requests.post(group.api("/v1/completions"), json=body, stream=True, timeout=300)
    assert r.status_code == 200, r.text
    return r


def gauge(group: Group, name: str) -> float:
    text = group.pods[0].health("/metrics").text
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)]
    assert values, f"{name} not in /metrics"
    return sum(values)


@pytest.fixture(scope="module")
def tp2(shards_a: dict[int, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from worker_helpers import launch

    group = launch(
        shards_a[2],
        2,
        tmp_path_factory.mktemp("serving"),
        nproc=2,
        optional={"BLOOM_KV_CACHE_TOKENS": "1024", "BLOOM_KV_BLOCK_SIZE": "8", "BLOOM_PREFILL_CHUNK_TOKENS": "64"},
    )
    try:
        yield group.wait_ready(180)
    finally:
        group.stop()


def test_concurrent_requests_get_the_tokens_each_gets_alone(tp2: Group) -> None:
    alone = [generate(tp2, p, n) for p, n in zip(PROMPTS, LENGTHS, strict=True)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda pn: generate(tp2, *pn), zip(PROMPTS, LENGTHS, strict=True)))
    assert together == alone
    assert [len(t) for t in together] == LENGTHS


def test_a_short_request_sent_after_a_long_one_finishes_first(tp2: Group) -> None:
    long = stream(tp2, list(range(5, 120)), 400)
    chunks: list[tuple[float, bytes]] = []
    started = threading.Event()

    def read() -> None:
        for line in long.iter_lines():
            if line.startswith(b"data: "):
                chunks.append((time.monotonic(), line))
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(120)  # the long one is decoding
    assert len(generate(tp2, [7, 8, 9], 4)) == 4
    short_done = time.monotonic()
    reader.join(300)
    assert chunks[-1][1] == b"data: [DONE]"
    after = [t for t, _ in chunks if t > short_done]
    assert len(after) > 50, f"the long request had all but {len(after)} of its chunks out before the short one"


def test_a_client_that_disconnects_frees_its_slot(tp2: Group) -> None:
    r = stream(tp2, [5, 6, 7], 1000)
    lines = r.iter_lines()
    for _ in range(3):
        next(line for line in lines if line.startswith(b"data: "))
    assert gauge(tp2, "bloom_worker_running_requests") == 1
    assert gauge(tp2, "bloom_worker_kv_blocks_used") > 0
    r.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while gauge(tp2, "bloom_worker_running_requests") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauge(tp2, "bloom_worker_running_requests") == 0
    assert gauge(tp2, "bloom_worker_kv_blocks_used") == 0


def test_the_queue_bound_answers_429(shards_a: dict[int, Path], spawn) -> None:
    group = spawn(
        shards_a[2],
        2,
        nproc=2,
        optional={"BLOOM_MAX_RUNNING_REQUESTS": "1", "BLOOM_MAX_WAITING_REQUESTS": "1"},
    ).wait_ready(180)
    running = stream(group, [5, 6, 7], 1000)
    next(line for line in running.iter_lines() if line.startswith(b"data: "))
    waiting = threading.Thread(target=generate, args=(group, [8, 9], 2), daemon=True)
    waiting.start()
    deadline = time.monotonic() + 10
    while gauge(group, "bloom_worker_waiting_requests") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = requests.post(group.api("/generate"), json={"input_ids": [1, 2], "max_new_tokens": 2}, timeout=30)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "waiting" in json.loads(r.text)["error"]["message"]
    running.close()
    waiting.join(60)
    assert not waiting.is_alive()
    assert len(generate(group, [1, 2], 2)) == 2


def test_a_pass_failing_on_every_rank_fails_only_its_request(shards_a: dict[int, Path], spawn) -> None:
    """Out of memory injected on both ranks in any pass of 13 tokens: that request gets 503, the ranks stay
    in lockstep, and the group serves the next request (on NCCL the same path holds: the ranks agree on
    each pass's outcome over the gloo control channel)."""
    group = spawn(
        shards_a[2], 2, nproc=2, optional={"BLOOM_DEBUG_API": "1", "BLOOM_DEBUG_FAIL_PASS_TOKENS": "13"}
    ).wait_ready(180)
    r = requests.post(group.api("/generate"), json={"input_ids": list(range(20, 33)), "max_new_tokens": 4}, timeout=60)
    assert r.status_code == 503, r.text
    assert "out of memory" in r.json()["error"]["message"]
    assert len(generate(group, [5, 6, 7], 5)) == 5
    for pod in group.pods:
        assert pod.health("/livez").status_code == 200
