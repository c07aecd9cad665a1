"""Rank 0's HTTP API and every pod's health server, on a TP=2 group of two pods of one rank that bind
distinct loopback addresses (127.0.0.2 and 127.0.0.3, as the local process node will run pods)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bloom_worker.report import HEARTBEAT_S
from worker_helpers import Group, launch


@pytest.fixture(scope="module")
def group(shards_a: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    g = launch(shards_a[2], 2, tmp_path_factory.mktemp("http"), binds=["127.0.0.2", "127.0.0.3"])
    try:
        yield g.wait_ready(120)
    finally:
        g.stop()


def post(g: Group, path: str, body: object, **kw: object) -> requests.Response:
    return requests.post(g.api(path), json=body, timeout=60, **kw)  # type: ignore[arg-type]


def test_completions_return_text(group: Group) -> None:
    r = post(group, "/v1/completions", {"model": "tiny", "prompt": "hello world", "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "tiny" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert isinstance(choice["text"], str) and choice["text"].strip()
    assert choice["finish_reason"] in ("length", "stop") and body["usage"]["prompt_tokens"] == 2
    assert body["usage"]["completion_tokens"] == len(choice["token_ids"])
    # the same prompt as ids through /generate gives the same greedy continuation
    ids = post(group, "/generate", {"input_ids": [4, 5], "max_new_tokens": 5, "temperature": 0}).json()["output_ids"]
    assert ids == choice["token_ids"]
    tgi = post(group, "/generate", {"inputs": "hello world", "parameters": {"max_new_tokens": 5}}).json()
    assert tgi["output_ids"] == ids and tgi["generated_text"] == choice["text"]


def test_multiple_prompts_and_sampling(group: Group) -> None:
    r = post(group, "/v1/completions", {"prompt": ["hello", [7, 8, 9]], "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200 and [c["index"] for c in r.json()["choices"]] == [0, 1]
    body = {
        "input_ids": [10, 11, 12],
        "max_new_tokens": 6,
        "temperature": 0.9,
        "top_p": 0.9,
        "seed": 1234,
        "stop_at_eos": False,
    }
    a, b = post(group, "/generate", body).json(), post(group, "/generate", body).json()
    assert a["output_ids"] == b["output_ids"] and len(a["output_ids"]) == 6


def test_streaming(group: Group) -> None:
    full = post(group, "/v1/completions", {"prompt": "bloom int8", "max_tokens": 4, "temperature": 0}).json()[
        "choices"
    ][0]
    r = post(
        group,
        "/v1/completions",
        {"prompt": "bloom int8", "max_tokens": 4, "temperature": 0, "stream": True},
        stream=True,
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = [t for c in chunks for t in c["choices"][0]["token_ids"]]
    assert ids == full["token_ids"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == full["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == full["finish_reason"]


@pytest.mark.parametrize(
    ("path", "body", "code", "reason"),
    [
        ("/v1/completions", "{not json", 400, "not valid JSON"),
        ("/v1/completions", {"max_tokens": 3}, 400, "prompt is required"),
        ("/v1/completions", {"prompt": "hello", "max_tokens": 0}, 400, "max_tokens=0 is outside"),
        ("/v1/completions", {"prompt": "hello", "max_tokens": 100000}, 400, "max_tokens=100000 is outside"),
        ("/v1/completions", {"prompt": "hello", "temperature": -1}, 400, "temperature=-1 is outside"),
        ("/v1/completions", {"prompt": "hello", "n": 2}, 400, "only n=1"),
        ("/v1/completions", {"prompt": [1] * 2049}, 400, "has 2049 tokens; the limit is 2048"),
        ("/generate", {"input_ids": [1, 250], "max_new_tokens": 2}, 400, "outside the vocabulary"),
        ("/generate", {"input_ids": [], "max_new_tokens": 2}, 400, "non-empty list"),
        ("/generate", {"input_ids": [1], "max_new_tokens": "many"}, 400, "max_new_tokens must be an integer"),
        ("/generate", {"prompt": "x"}, 400, "needs input_ids"),
        ("/nope", {}, 404, "no route"),
    ],
)
def test_invalid_requests_get_4xx_with_a_reason(group: Group, path: str, body: object, code: int, reason: str) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    r = requests.post(group.api(path), data=data, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == code, r.text
    assert reason in r.json()["error"]["message"]


def test_body_size_and_method_limits(group: Group) -> None:
    r = requests.post(group.api("/v1/completions"), data=b"x" * (2 << 20), timeout=30)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]["message"]
    assert requests.get(group.api("/v1/completions"), timeout=10).status_code == 405
    assert requests.get(group.api("/v1/models"), timeout=10).json()["data"][0]["id"] == "tiny"


def test_concurrent_requests_are_batched(group: Group) -> None:
    prompts = [[5 + i] * (1 + i) for i in range(6)]
    alone = [
        post(group, "/generate", {"input_ids": p, "max_new_tokens": 6, "stop_at_eos": False}).json()["output_ids"]
        for p in prompts
    ]
    time.sleep(1.5 * HEARTBEAT_S)  # the launcher serves the metrics of the ranks' last report
    before = requests.get(group.pods[0].url("/metrics"), timeout=10).text
    results: list[list[int] | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def call(i: int) -> None:
        barrier.wait()
        results[i] = post(
            group, "/generate", {"input_ids": prompts[i], "max_new_tokens": 6, "stop_at_eos": False}
        ).json()["output_ids"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == alone
    time.sleep(1.5 * HEARTBEAT_S)
    after = requests.get(group.pods[0].url("/metrics"), timeout=10).text

    def metric(text: str, name: str) -> float:
        series = name + '{rank="0"} '
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(series)))

    batches = metric(after, "bloom_worker_batches_total") - metric(before, "bloom_worker_batches_total")
    rows = metric(after, "bloom_worker_batch_rows_total") - metric(before, "bloom_worker_batch_rows_total")
    assert rows == len(prompts) and batches < rows, "concurrent requests should share batches"


def test_health_and_metrics_on_every_pod(group: Group) -> None:
    for p in group.pods:
        live = p.health().json()
        assert live["status"] == "ok" and [r["rank"] for r in live["ranks"]] == [p.node_rank]
        assert live["ranks"][0]["last_report_age_s"] < 5
        livez = p.health("/livez")
        assert livez.status_code == 200 and livez.json()["live"] and livez.json()["timeout_s"] == 90.0
        (rank,) = livez.json()["ranks"]
        assert rank["stuck"] is None and rank["exit_code"] is None and 0 <= rank["progress_age_s"] < 5
        ready = p.health("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"]
        assert [(r["rank"], r["phase"], r["communicator_up"]) for r in ready.json()["ranks"]] == [
            (p.node_rank, "ready", True)
        ]
        m = p.health("/metrics")
        assert m.headers["Content-Type"].startswith("text/plain")
        assert "bloom_pod_ready 1" in m.text and f'bloom_worker_ready{{rank="{p.node_rank}"}} 1' in m.text
        assert "bloom_pod_live 1" in m.text and f'bloom_worker_progress_age_seconds{{rank="{p.node_rank}"}}' in m.text
        info = f'deployment="tiny",epoch="1",group="0",local_rank="0",rank="{p.node_rank}",world_size="2"'
        assert f"bloom_worker_info{{{info}}} 1" in m.text
        families = [line.split()[2] for line in m.text.splitlines() if line.startswith("# TYPE")]
        assert len(families) == len(set(families)), "one TYPE line per family"
    assert (
        'bloom_worker_requests_total{code="200",path="/v1/completions",rank="0"}'
        in requests.get(group.pods[0].url("/metrics"), timeout=5).text
    )


def test_model_without_tokenizer_serves_ids_only(shards_b: dict[int, Path], spawn) -> None:
    g = spawn(shards_b[1], 1).wait_ready(120)
    r = post(g, "/v1/completions", {"prompt": "hello", "max_tokens": 2})
    assert r.status_code == 400 and "no tokenizer" in r.json()["error"]["message"]
    r = post(g, "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200 and len(r.json()["choices"][0]["token_ids"]) <= 2
    assert post(g, "/generate", {"input_ids": [1, 2, 3], "max_new_tokens": 3, "stop_at_eos": False}).json()[
        "output_ids"
    ]
