"""Rank 0's HTTP API and every pod's health server, on a TP=2 group of two pods of one rank that bind
distinct loopback addresses (127.0.0.2 and 127.0.0.3, as the local process node will run pods). The
group needs an API key; every request here sends it, test_openai_api.py checks what happens without."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from api_helpers import api_group, chunks, metric, post, raw_http, status_of
from bloom_worker.report import HEARTBEAT_S
from worker_helpers import Group


@pytest.fixture(scope="module")
def served(shards_a: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Group, str]]:
    g, key = api_group(shards_a[2], 2, tmp_path_factory.mktemp("http"), binds=["127.0.0.2", "127.0.0.3"])
    try:
        yield g.wait_ready(120), key
    finally:
        g.stop()


def call(served: tuple[Group, str], path: str, body: object, **kw: object) -> requests.Response:
    g, key = served
    return post(g, key, path, body, **kw)


def greedy(served: tuple[Group, str], prompt: object, n: int, **kw: object) -> dict:
    r = call(served, "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0, **kw})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def test_completions_generate_and_tgi_agree(served: tuple[Group, str]) -> None:
    r = call(served, "/v1/completions", {"model": "tiny", "prompt": "hello world", "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "tiny" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert isinstance(choice["text"], str) and choice["text"].strip() and choice["logprobs"] is None
    assert choice["finish_reason"] in ("length", "stop") and body["usage"]["prompt_tokens"] == 2
    assert body["usage"]["completion_tokens"] == len(choice["token_ids"])
    # the same prompt as ids through /generate gives the same greedy continuation
    ids = call(served, "/generate", {"input_ids": [4, 5], "max_new_tokens": 5, "temperature": 0}).json()
    assert ids["output_ids"] == choice["token_ids"] and ids["generated_text"] == choice["text"]
    tgi = call(served, "/generate", {"inputs": "hello world", "parameters": {"max_new_tokens": 5, "details": True}})
    assert tgi.status_code == 200, tgi.text
    tgi = tgi.json()
    assert tgi["output_ids"] == ids["output_ids"] and tgi["generated_text"] == choice["text"]
    assert [t["id"] for t in tgi["details"]["tokens"]] == choice["token_ids"]
    assert tgi["details"]["generated_tokens"] == len(choice["token_ids"])
    full = call(
        served, "/generate", {"inputs": "hello world", "parameters": {"max_new_tokens": 5, "return_full_text": True}}
    )
    assert full.json()["generated_text"] == "hello world" + choice["text"]


def test_tgi_generate_stream(served: tuple[Group, str]) -> None:
    want = call(served, "/generate", {"inputs": "bloom int8", "parameters": {"max_new_tokens": 6}}).json()
    g, key = served
    r = requests.post(
        g.api("/generate_stream"),
        json={"inputs": "bloom int8", "parameters": {"max_new_tokens": 6}},
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=60,
    )
    payloads = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert r.status_code == 200 and "[DONE]" not in payloads  # TGI streams end without it
    events = [json.loads(p) for p in payloads]
    assert [e["token"]["id"] for e in events] == want["output_ids"]
    assert [e["generated_text"] for e in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1]["generated_text"] == want["generated_text"]
    assert events[-1]["details"]["generated_tokens"] == len(want["output_ids"])


def test_prompts_times_n_choices_and_seeded_sampling(served: tuple[Group, str]) -> None:
    r = call(served, "/v1/completions", {"prompt": ["hello", [7, 8, 9]], "max_tokens": 3, "temperature": 0, "n": 2})
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert choices[0]["token_ids"] == choices[1]["token_ids"] and choices[2]["token_ids"] == choices[3]["token_ids"]
    assert r.json()["usage"]["prompt_tokens"] == 1 + 3  # each prompt once, whatever n
    body = {
        "input_ids": [10, 11, 12],
        "max_new_tokens": 6,
        "temperature": 0.9,
        "top_p": 0.9,
        "seed": 1234,
        "stop_at_eos": False,
    }
    a, b = call(served, "/generate", body).json(), call(served, "/generate", body).json()
    assert a["output_ids"] == b["output_ids"] and len(a["output_ids"]) == 6


def test_streaming_equals_the_whole_answer(served: tuple[Group, str]) -> None:
    full = greedy(served, "bloom int8", 6)
    r = call(
        served,
        "/v1/completions",
        {
            "prompt": "bloom int8",
            "max_tokens": 6,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    got = chunks(r)
    usage, text_chunks = got[-1], got[:-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(full["token_ids"])
    assert [t for c in text_chunks for t in c["choices"][0]["token_ids"]] == full["token_ids"]
    assert "".join(c["choices"][0]["text"] for c in text_chunks) == full["text"]
    assert text_chunks[-1]["choices"][0]["finish_reason"] == full["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in text_chunks[:-1])


def test_stop_strings_end_the_text_before_them(served: tuple[Group, str]) -> None:
    prompt = [5, 6, 7]
    free = greedy(served, prompt, 12, ignore_eos=True)
    words = free["text"].split(" ")
    assert len(words) >= 6, free
    stop = " " + words[3]  # the 4th word (and its space) stops the text
    want = free["text"][: free["text"].index(stop)]
    stopped = greedy(served, prompt, 12, ignore_eos=True, stop=[stop, "never-seen"])
    assert stopped["text"] == want and stopped["finish_reason"] == "stop"
    assert len(stopped["token_ids"]) < len(free["token_ids"])
    r = call(
        served,
        "/v1/completions",
        {"prompt": prompt, "max_tokens": 12, "temperature": 0, "ignore_eos": True, "stop": stop, "stream": True},
        stream=True,
    )
    got = chunks(r)
    texts = [c["choices"][0]["text"] for c in got]
    assert "".join(texts) == want and got[-1]["choices"][0]["finish_reason"] == "stop"
    assert stop not in "".join(texts) and len(got) > 1


BAD = [
    ("/v1/completions", {"prompt": "hello", "seed": 2**70}, 400, "seed"),
    ("/v1/completions", {"prompt": "hello", "temperature": 1e-40}, 400, "temperature"),
    ("/v1/completions", {"prompt": "hello", "temperature": -1}, 400, "temperature"),
    ("/v1/completions", {"prompt": [1, 250], "max_tokens": 2}, 400, "prompt"),
    ("/v1/completions", {"prompt": "hello", "max_tokens": 10**6}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "hello", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": [1] * 5000, "max_tokens": 2}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "hello", "top_p": 0}, 400, "top_p"),
    ("/v1/completions", {"prompt": "hello", "n": 0}, 400, "n"),
    ("/v1/completions", {"prompt": "hello", "n": 2, "best_of": 3}, 400, "best_of"),
    ("/v1/completions", {"prompt": "hello", "logprobs": 6}, 400, "logprobs"),
    ("/v1/completions", {"prompt": "hello", "presence_penalty": 3}, 400, "presence_penalty"),
    ("/v1/completions", {"prompt": "hello", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("/v1/completions", {"prompt": "hello", "logit_bias": {"5": 1}}, 400, "logit_bias"),
    ("/v1/completions", {"prompt": "hello", "suffix": "x"}, 400, "suffix"),
    ("/v1/completions", {"prompt": "hello", "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ("/v1/completions", {"prompt": "hello", "model": "gpt-4"}, 404, "model"),
    ("/v1/completions", {"prompt": "a\ud800b"}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\udfff"}]}, 400, "messages"),
    ("/v1/completions", {"max_tokens": 3}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": [{}]}, 400, "tools"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "hi"}]}, 400, "messages[0].role"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, 400, "top_logprobs"),
    ("/generate", {"input_ids": [1, 250], "max_new_tokens": 2}, 400, "input_ids"),
    ("/generate", {"input_ids": [], "max_new_tokens": 2}, 400, "input_ids"),
    ("/generate", {"input_ids": [1], "max_new_tokens": "many"}, 400, "max_new_tokens"),
    ("/generate", {"input_ids": [1], "return_logits": True}, 400, "return_logits"),
    ("/generate", {"inputs": "hello", "parameters": {"typical_p": 0.5}}, 400, "parameters.typical_p"),
    ("/generate", {"inputs": "hello", "parameters": {"seed": -1}}, 400, "parameters.seed"),
    ("/generate", {"prompt": "x"}, 400, "inputs"),
]


@pytest.mark.parametrize(("path", "body", "code", "param"), BAD, ids=[f"{p}-{b}"[:60] for p, b, _, _ in BAD])
def test_bad_requests_get_4xx_naming_the_field(
    served: tuple[Group, str], path: str, body: object, code: int, param: str
) -> None:
    r = call(served, path, body)
    assert r.status_code == code, r.text
    error = r.json()["error"]
    assert error["param"] == param and param.split(".")[-1].split("[")[0] in error["message"], error
    assert set(error) == {"message", "type", "param", "code"}


def test_the_group_serves_normally_after_bad_requests(served: tuple[Group, str]) -> None:
    g, key = served
    auth = f"Authorization: Bearer {key}\r\n".encode()
    before = greedy(served, [5, 6], 4)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth
    malformed = head + b"Content-Length: 9\r\n\r\n{not json"
    assert status_of(raw_http(g, malformed)) == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    assert status_of(raw_http(g, head + f"Content-Length: {len(deep)}\r\n\r\n".encode() + deep)) == 400
    assert status_of(raw_http(g, head + b"\r\n")) == 411  # neither Content-Length nor chunked
    assert status_of(raw_http(g, head + b"Content-Length: -5\r\n\r\n")) == 400
    body = json.dumps({"prompt": [5, 6], "max_tokens": 4, "temperature": 0}).encode()
    chunked = (
        head
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:7], body[7:]))
        + b"0\r\n\r\n"
    )
    answer = raw_http(g, chunked)
    assert status_of(answer) == 200, answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["choices"][0]["token_ids"] == before["token_ids"]
    assert status_of(raw_http(g, head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n")) == 400
    # 10 MB: 413, answered without reading it (the client still reads the answer)
    big = requests.post(
        g.api("/v1/completions"), data=b"x" * (10 << 20), headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert big.status_code == 413 and "exceeds the limit" in big.json()["error"]["message"]
    assert requests.get(g.api("/v1/completions"), headers={"Authorization": f"Bearer {key}"}).status_code == 405
    assert requests.post(g.api("/healthz"), timeout=10).status_code == 405  # open, and GET only
    assert greedy(served, [5, 6], 4) == before


def test_a_client_that_leaves_frees_its_request(served: tuple[Group, str]) -> None:
    g, key = served
    pod0 = g.pods[0]

    def generated() -> float:
        return metric(
            requests.get(pod0.url("/metrics"), timeout=5).text, 'bloom_worker_generated_tokens_total{rank="0"}'
        )

    def running() -> float:
        return metric(requests.get(pod0.url("/metrics"), timeout=5).text, 'bloom_worker_running_requests{rank="0"}')

    body = {"prompt": [5, 6, 7], "max_tokens": 1500, "temperature": 0, "ignore_eos": True}
    for stream in (True, False):
        start = generated()
        host, port = g.http.removeprefix("http://").split(":")
        data = json.dumps({**body, "stream": stream}).encode()
        s = socket.create_connection((host, int(port)))
        s.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        time.sleep(1.0)
        s.close()
        deadline = time.monotonic() + 10
        while running() > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running() == 0, f"stream={stream}: the request still runs after its client left"
        time.sleep(1.5 * HEARTBEAT_S)
        after = generated()
        time.sleep(1.5 * HEARTBEAT_S)
        assert generated() == after, "nothing generates once the client left"
        assert after - start < body["max_tokens"], f"stream={stream}: it ran to the end"


def test_debug_logits_match_the_prompt(served: tuple[Group, str]) -> None:
    r = call(served, "/debug/logits", {"input_ids": [5, 6, 7]})
    assert r.status_code == 200, r.text
    logits = r.json()["logits"]
    assert len(logits) == 3 and len(logits[0]) == 250
    first = greedy(served, [5, 6, 7], 1, ignore_eos=True)["token_ids"][0]
    assert max(range(250), key=lambda i: logits[-1][i]) == first


def test_health_and_metrics_on_every_pod(served: tuple[Group, str]) -> None:
    group, key = served
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
    call(served, "/no/such/route", {})
    time.sleep(1.5 * HEARTBEAT_S)
    text = requests.get(group.pods[0].url("/metrics"), timeout=5).text
    assert metric(text, 'bloom_worker_requests_total{code="200",rank="0",route="/v1/completions"}') > 0
    assert metric(text, 'bloom_worker_requests_total{code="404",rank="0",route="other"}') > 0
    assert "/no/such/route" not in text, "never the raw path as a label"
    assert "# TYPE bloom_worker_time_to_first_token_seconds histogram" in text
    buckets = [line for line in text.splitlines() if line.startswith("bloom_worker_request_seconds_bucket{")]
    assert buckets and any('le="+Inf"' in b for b in buckets)
    assert key not in text


def test_model_without_tokenizer_serves_ids_and_a_full_queue_answers_429(shards_b: dict[int, Path], spawn) -> None:
    g = spawn(shards_b[1], 1, optional={"BLOOM_MAX_RUNNING_REQUESTS": "1", "BLOOM_MAX_WAITING_REQUESTS": "1"})
    g.wait_ready(120)
    r = post(g, None, "/v1/completions", {"prompt": "hello", "max_tokens": 2})
    assert r.status_code == 400 and "no tokenizer" in r.json()["error"]["message"]
    r = post(g, None, "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200 and len(r.json()["choices"][0]["token_ids"]) <= 2
    assert post(g, None, "/debug/logits", {"input_ids": [1, 2]}).status_code == 404  # BLOOM_DEBUG_API is off
    # one running, one waiting: a request of 4 choices cannot all get in
    r = post(g, None, "/v1/completions", {"prompt": [[1, 2, 3]] * 4, "max_tokens": 200, "ignore_eos": True})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
    assert r.json()["error"]["code"] == "queue_full"
    assert post(g, None, "/generate", {"input_ids": [1, 2, 3], "max_new_tokens": 3, "stop_at_eos": False}).json()[
        "output_ids"
    ]
