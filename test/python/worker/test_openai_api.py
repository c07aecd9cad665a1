"""The official `openai` client (pinned in pyproject.toml) against a real TP=2 group (one pod of two rank
processes, gloo) that needs an API key: completions and chat, streamed and not, stop strings,
logprobs + echo against transformers, seeded n, refused fields, the key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
import torch

from api_helpers import api_group
from bloom_worker.report import HEARTBEAT_S
from worker_helpers import Group, hf_logits

# the worker runs the dequantized INT8 weights that hf_logits(fake_quant_from=...) puts into
# transformers' fp32 model; their log-softmax agree to fp32 summation order (measured 2e-6)
LOGPROB_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def served(shards_a: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Group, str]]:
    g, key = api_group(shards_a[2], 2, tmp_path_factory.mktemp("openai"), nproc=2)
    try:
        yield g.wait_ready(120), key
    finally:
        g.stop()


@pytest.fixture(scope="module")
def client(served: tuple[Group, str]) -> openai.OpenAI:
    g, key = served
    return openai.OpenAI(base_url=g.api("/v1"), api_key=key, max_retries=0, timeout=60)


def test_models_and_completions_streamed_and_not(client: openai.OpenAI) -> None:
    (model,) = client.models.list().data
    assert model.id == "tiny" and model.created > 0
    whole = client.completions.create(model="tiny", prompt="hello world", max_tokens=6, temperature=0)
    assert whole.choices[0].text and whole.usage is not None and whole.usage.prompt_tokens == 2
    stream = client.completions.create(
        model="tiny",
        prompt="hello world",
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = list(stream)
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert "".join(p.choices[0].text for p in parts if p.choices) == whole.choices[0].text
    assert [p.choices[0].finish_reason for p in parts if p.choices][-1] == whole.choices[0].finish_reason


def test_chat_streamed_and_not(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello bloom"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0)
    assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant"
    assert whole.choices[0].message.content and whole.choices[0].finish_reason in ("length", "stop")
    # the default template renders the turns as text: the same prompt sent to /v1/completions
    prompt = "You are terse.\n\nUser: hello bloom\nAssistant:"
    same = client.completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0)
    assert same.choices[0].text == whole.choices[0].message.content
    parts = list(
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0, stream=True)
    )
    assert parts[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parts) == whole.choices[0].message.content
    assert parts[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    lp = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = lp.choices[0].logprobs.content
    assert len(content) == lp.usage.completion_tokens and all(len(c.top_logprobs) == 3 for c in content)
    assert all(c.top_logprobs[0].logprob >= c.logprob - 1e-6 for c in content)  # greedy: the best one


def test_stop_ends_before_the_stop_string(client: openai.OpenAI) -> None:
    free = client.completions.create(
        model="tiny", prompt=[9, 8, 7], max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    ).choices[0]
    words = free.text.split(" ")
    stop = " " + words[4]
    want = free.text[: free.text.index(stop)]
    got = client.completions.create(
        model="tiny", prompt=[9, 8, 7], max_tokens=12, temperature=0, stop=[stop], extra_body={"ignore_eos": True}
    ).choices[0]
    assert (got.text, got.finish_reason) == (want, "stop")
    parts = list(
        client.completions.create(
            model="tiny",
            prompt=[9, 8, 7],
            max_tokens=12,
            temperature=0,
            stop=stop,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert "".join(p.choices[0].text for p in parts) == want and parts[-1].choices[0].finish_reason == "stop"


def test_echo_logprobs_match_transformers(client: openai.OpenAI, model_a: Path, shards_a: dict[int, Path]) -> None:
    ids = [5, 17, 100, 3, 249, 42, 8]
    r = client.completions.create(
        model="tiny", prompt=ids, max_tokens=3, temperature=0, echo=True, logprobs=5, extra_body={"ignore_eos": True}
    )
    choice = r.choices[0]
    lp = choice.logprobs
    generated = choice.model_extra["token_ids"]
    assert len(lp.tokens) == len(ids) + 3 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert choice.text.startswith(" ".join(t for t in lp.tokens[: len(ids)] if t))  # the prompt's text first
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    want = torch.log_softmax(hf_logits(model_a, ids + generated, fake_quant_from=shards_a[2]).double(), dim=-1)
    seq = ids + generated
    expected = [float(want[i - 1, seq[i]]) for i in range(1, len(seq))]
    got = lp.token_logprobs[1:]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= LOGPROB_TOLERANCE, (got, expected)
    for i in range(1, len(seq)):  # top 5 (and the token itself), with their logprobs
        top = lp.top_logprobs[i]
        assert 5 <= len(top) <= 6 and abs(max(top.values()) - float(want[i - 1].max())) <= LOGPROB_TOLERANCE
    # greedy continuation: each generated token is the best one
    for i in range(len(ids), len(seq)):
        assert abs(lp.token_logprobs[i] - float(want[i - 1].max())) <= LOGPROB_TOLERANCE
    # max_tokens=0 with echo: the prompt's logprobs only (what lm-evaluation-harness's loglikelihood sends)
    only = client.completions.create(model="tiny", prompt=ids, max_tokens=0, echo=True, logprobs=0).choices[0]
    assert only.logprobs.token_logprobs[0] is None and only.model_extra["token_ids"] == []
    pairs = zip(only.logprobs.token_logprobs[1:], lp.token_logprobs[1 : len(ids)], strict=True)
    assert max(abs(a - b) for a, b in pairs) <= LOGPROB_TOLERANCE


def test_n_with_a_seed_is_reproducible(client: openai.OpenAI) -> None:
    def sample() -> list[str]:
        r = client.completions.create(
            model="tiny",
            prompt="the model",
            max_tokens=8,
            temperature=1.0,
            n=3,
            seed=7,
            extra_body={"ignore_eos": True},
        )
        return [c.model_extra["token_ids"] for c in sorted(r.choices, key=lambda c: c.index)]

    first = sample()
    assert len(first) == 3 and first == sample()
    assert len({tuple(c) for c in first}) > 1, "the 3 choices have their own seeds"


def test_unsupported_fields_are_bad_requests_naming_them(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        client.completions.create(model="tiny", prompt="hello", max_tokens=2, logit_bias={"5": 1})
    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model="tiny", prompt="hello", max_tokens=2, suffix="!")
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
        )
    with pytest.raises(openai.BadRequestError, match="seed"):
        client.completions.create(model="tiny", prompt="hello", max_tokens=2, seed=2**70)


def test_the_api_key(served: tuple[Group, str], client: openai.OpenAI) -> None:
    g, key = served
    anonymous = openai.OpenAI(base_url=g.api("/v1"), api_key="sk-wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as e:
        anonymous.completions.create(model="tiny", prompt="hello", max_tokens=2)
    assert e.value.code == "invalid_api_key"
    r = requests.post(g.api("/generate"), json={"input_ids": [1], "max_new_tokens": 1}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    assert requests.get(g.api("/v1/models"), timeout=30).status_code == 401
    assert requests.get(g.api("/healthz"), timeout=30).json() == {"status": "ok"}
    assert requests.get(g.api("/readyz"), timeout=30).json() == {"ready": True}
    assert client.completions.create(model="tiny", prompt="hello", max_tokens=2).choices  # with the key: 200
    time.sleep(1.5 * HEARTBEAT_S)
    for pod in g.pods:
        assert key not in requests.get(pod.url("/metrics"), timeout=5).text
        assert key not in pod.output()


def test_an_unreadable_or_empty_key_file_stops_the_pod(shards_a: dict[int, Path], spawn, tmp_path: Path) -> None:
    missing, empty = tmp_path / "no-such-key", tmp_path / "empty-key"
    empty.write_text(" \n")
    for path, reason in ((missing, "No such file"), (empty, "is empty")):
        g = spawn(shards_a[1], 1, optional={"BLOOM_API_KEY_FILE": str(path)})
        assert g.wait_exit(0, 60) == 2
        out = g.pods[0].output()
        assert "BLOOM_API_KEY_FILE: " in out and str(path) in out and reason in out, out[-2000:]
