"""Request parsing, in this process (no engine): what each endpoint's fields become (the choices and
their SamplingParams), and what is refused, naming the field."""

from __future__ import annotations

import pytest

from bloom_worker.chat_template import ChatTemplate
from bloom_worker.job import Limits, Model
from bloom_worker.openai_api import parse_chat, parse_completion
from bloom_worker.tgi_api import parse_generate
from bloom_worker.tokenizer import Tokenizer
from bloom_worker.validate import ApiError
from worker_helpers import build_tokenizer

VOCAB = 250


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    build_tokenizer(VOCAB).save(str(path))  # type: ignore[attr-defined]
    return Model("tiny", VOCAB, 64, 48, Tokenizer(path), ChatTemplate(None, "<s>", "</s>"), Limits(max_choices=8))


def refused(parse, body: dict, model: Model, param: str, status: int = 400) -> None:  # noqa: ANN001
    with pytest.raises(ApiError) as e:
        parse(body, model)
    assert (e.value.status, e.value.param) == (status, param), e.value.message


def test_completion_choices_are_prompt_by_prompt_with_seeds_seed_plus_i(model: Model) -> None:
    job = parse_completion(
        {"prompt": ["hello", [7, 8]], "n": 3, "seed": 40, "max_tokens": 5, "temperature": 0.5}, model
    )
    assert [c.prompt for c in job.choices] == [[4]] * 3 + [[7, 8]] * 3
    assert [c.params.seed for c in job.choices] == [40, 41, 42] * 2
    assert {(c.params.max_tokens, c.params.temperature) for c in job.choices} == {(5, 0.5)}
    assert job.prompt_tokens == 3 and not job.stream and not job.echo
    unseeded = parse_completion({"prompt": "hello", "n": 2}, model)
    assert [c.params.seed for c in unseeded.choices] == [None, None] and unseeded.choices[0].params.max_tokens == 16


def test_echo_logprobs_ask_for_the_prompt_logprobs(model: Model) -> None:
    (c,) = parse_completion({"prompt": [5, 6], "echo": True, "logprobs": 2, "max_tokens": 0}, model).choices
    assert (c.params.max_tokens, c.params.logprobs, c.params.prompt_logprobs) == (0, 2, 2)
    (c,) = parse_completion({"prompt": [5, 6], "logprobs": 0}, model).choices
    assert (c.params.logprobs, c.params.prompt_logprobs) == (0, None)
    (c,) = parse_completion({"prompt": [5, 6], "logit_bias": None, "user": "me"}, model).choices  # null: absent


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"prompt": [5], "max_tokens": 0}, "max_tokens", 400),
        ({"prompt": [5] * 20, "max_tokens": 40}, "max_tokens", 400),  # 60 <= context 64, but the KV cache holds 48
        ({"prompt": [5], "max_tokens": 65}, "max_tokens", 400),
        ({"prompt": [5], "seed": 2**63 - 1, "n": 2}, "seed", 400),  # seed + 1 would overflow
        ({"prompt": [5], "n": 9}, "n", 400),
        ({"prompt": [[5]] * 3, "n": 3}, "n", 400),  # 9 choices > 8
        ({"prompt": [5], "top_k": 251}, "top_k", 400),
        ({"prompt": [5], "echo": "yes"}, "echo", 400),
        (
            {"prompt": [5], "stream_options": {"include_usage": True, "continuous_usage_stats": True}, "stream": True},
            "stream_options.continuous_usage_stats",
            400,
        ),
        ({"prompt": [5], "model": "other"}, "model", 404),
        ({"prompt": [5], "logprobs": True}, "logprobs", 400),
    ],
)
def test_completion_refusals_name_the_field(model: Model, body: dict, param: str, status: int) -> None:
    refused(parse_completion, body, model, param, status)


def test_chat_renders_the_template_and_fills_the_context_by_default(model: Model) -> None:
    job = parse_chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}, model)
    (c,) = job.choices
    assert c.prompt == model.encode("User: hello\nAssistant:", "messages")
    assert c.params.max_tokens == 48 - len(c.prompt) and c.params.logprobs is None
    (c,) = parse_chat(
        {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "max_completion_tokens": 3}, model
    ).choices
    assert (c.params.logprobs, c.params.max_tokens) == (0, 3)
    refused(parse_chat, {"messages": [{"role": "user", "content": "x", "name": "bob"}]}, model, "messages[0].name")
    refused(
        parse_chat, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, model, "messages[0].content"
    )
    refused(
        parse_chat,
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "max_completion_tokens": 2},
        model,
        "max_completion_tokens",
    )


def test_generate_samples_as_tgi_chooses(model: Model) -> None:
    def params(p: dict):  # noqa: ANN202
        return parse_generate({"inputs": "hello", "parameters": p}, model, stream=False).choices[0].params

    assert params({}).temperature == 0.0 and params({"temperature": 1.0}).temperature == 0.0
    assert params({"temperature": 0.7}).temperature == 0.7 and params({"do_sample": True}).temperature == 1.0
    assert params({"top_k": 5}).temperature == 1.0 and params({"do_sample": True, "temperature": 0}).temperature == 0
    assert params({"stop_at_eos": False}).ignore_eos and params({"details": True}).logprobs == 0
    legacy = parse_generate({"input_ids": [5, 6], "max_new_tokens": 3, "seed": 9}, model, stream=False).choices[0]
    assert (legacy.prompt, legacy.params.max_tokens, legacy.params.seed) == ([5, 6], 3, 9)
    with pytest.raises(ApiError) as e:
        params({"truncate": 10})
    assert e.value.param == "parameters.truncate"
    with pytest.raises(ApiError) as e:
        parse_generate({"inputs": "hello", "stream": True}, model, stream=False)
    assert e.value.param == "stream"


def test_text_prompts_need_a_tokenizer() -> None:
    bare = Model("tiny", VOCAB, 64, 48, None, None, Limits())
    refused(parse_completion, {"prompt": "hello"}, bare, "prompt")
    refused(parse_completion, {"prompt": [5], "stop": "x"}, bare, "stop")
    refused(parse_chat, {"messages": [{"role": "user", "content": "x"}]}, bare, "messages")
    assert parse_completion({"prompt": [5]}, bare).choices[0].prompt == [5]
