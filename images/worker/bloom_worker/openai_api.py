"""OpenAI's /v1/completions and /v1/chat/completions: request parsing (every field validated, every
unimplemented one refused) and the shape of their answers, streamed or not.

Each prompt gets `n` choices, choice i of a prompt seeded `seed + i` when a seed is given (so a
seeded request is reproducible), ordered prompt by prompt as OpenAI orders them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .job import Choice, Job, Model
from .output import ChoiceOutput, Delta, LogprobEntry
from .sequence import MAX_LOGPROBS, MIN_TEMPERATURE, SEED_LIMIT, SamplingParams
from .validate import ApiError, Body, boolean, integer, number, obj, refuse_unknown, string, strings, token_ids

MAX_STOPS = 4
COMPLETION_LOGPROBS = min(5, MAX_LOGPROBS)  # OpenAI's bound for /v1/completions
MAX_TEMPERATURE = 100.0

SAMPLING_FIELDS = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "ignore_eos",
    "stream",
    "stream_options",
    "user",  # informational: accepted, not used
)
COMPLETION_FIELDS = (*SAMPLING_FIELDS, "prompt", "logprobs", "echo", "best_of")
CHAT_FIELDS = (*SAMPLING_FIELDS, "messages", "max_completion_tokens", "logprobs", "top_logprobs")
ROLES = ("system", "user", "assistant")


def check_model(body: Body, model: Model) -> None:
    name = string(body, "model")
    if name is not None and name != model.name:
        raise ApiError(
            404, f"model '{name}' does not exist; this server serves '{model.name}'", "model", code="model_not_found"
        )


def temperature(body: Body, default: float) -> float:
    t = number(body, "temperature", default, 0.0, MAX_TEMPERATURE)
    if 0.0 < t < MIN_TEMPERATURE:
        raise ApiError(
            400, f"temperature={t:g} is too small: use 0 (greedy) or at least {MIN_TEMPERATURE:g}", "temperature"
        )
    return t


def seeds(body: Body, n: int) -> list[int | None]:
    seed = integer(body, "seed", None, 0, SEED_LIMIT - n)
    return [None if seed is None else seed + i for i in range(n)]


@dataclass(frozen=True)
class Sampling:
    """The fields shared by completions and chat, read once per request."""

    n: int
    stream: bool
    include_usage: bool
    stops: tuple[str, ...]
    params: SamplingParams
    seeds: list[int | None]


def sampling(body: Body, model: Model, prompts: int) -> Sampling:
    check_model(body, model)
    n = integer(body, "n", 1, 1, max(1, model.limits.max_choices // prompts))
    assert n is not None
    stream = boolean(body, "stream", False)
    options = obj(body, "stream_options")
    if options and not stream:
        raise ApiError(400, "stream_options needs stream: true", "stream_options")
    refuse_unknown(options, ("include_usage",), "stream_options.")
    stops = strings(body, "stop", MAX_STOPS)
    if stops and model.tokenizer is None:
        raise ApiError(400, "stop strings need a tokenizer; this model directory has none", "stop")
    top_k = integer(body, "top_k", 0, -1, model.vocab_size)
    params = SamplingParams(
        max_tokens=0,  # each choice's own, below
        temperature=temperature(body, 1.0),
        top_p=number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        top_k=max(0, top_k or 0),  # -1 (vLLM) and 0: off
        presence_penalty=number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        repetition_penalty=number(body, "repetition_penalty", 1.0, 0.0, 10.0, lo_open=True),
        ignore_eos=boolean(body, "ignore_eos", False),
    )
    return Sampling(
        n=n,
        stream=stream,
        include_usage=boolean(options, "include_usage", False, "stream_options."),
        stops=stops,
        params=params,
        seeds=seeds(body, n),
    )


def choices(
    prompts: Sequence[list[int]], s: Sampling, max_tokens: list[int], logprobs: int | None, prompt_logprobs: int | None
) -> list[Choice]:
    return [
        Choice(ids, replace(s.params, max_tokens=mt, seed=seed, logprobs=logprobs, prompt_logprobs=prompt_logprobs))
        for ids, mt in zip(prompts, max_tokens, strict=True)
        for seed in s.seeds
    ]


# --- /v1/completions ---------------------------------------------------------------------------


def completion_prompts(body: Body, model: Model) -> list[list[int]]:
    prompt = body.get("prompt")
    if prompt is None:
        raise ApiError(400, "prompt is required", "prompt")
    if isinstance(prompt, str):
        return [model.encode(prompt, "prompt")]
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        return [token_ids(prompt, model.vocab_size, "prompt")]
    if isinstance(prompt, list) and prompt and len(prompt) <= model.limits.max_choices:
        return [
            model.encode(p, f"prompt[{i}]") if isinstance(p, str) else token_ids(p, model.vocab_size, f"prompt[{i}]")
            for i, p in enumerate(prompt)
        ]
    raise ApiError(
        400,
        f"prompt must be a string, a list of token ids, or a list of at most {model.limits.max_choices} of those",
        "prompt",
    )


def parse_completion(body: Body, model: Model) -> Job:
    refuse_unknown(body, COMPLETION_FIELDS)
    prompts = completion_prompts(body, model)
    s = sampling(body, model, len(prompts))
    best_of = integer(body, "best_of", s.n, 1, model.limits.max_choices)
    if best_of != s.n:
        raise ApiError(400, f"best_of={best_of} is not supported: only best_of = n ({s.n})", "best_of")
    echo = boolean(body, "echo", False)
    logprobs = integer(body, "logprobs", None, 0, COMPLETION_LOGPROBS)
    mt = integer(body, "max_tokens", 16, 0, model.max_context)
    assert mt is not None
    if mt == 0 and not echo:
        raise ApiError(400, "max_tokens=0 needs echo: true (the prompt's logprobs)", "max_tokens")
    for ids in prompts:
        model.check_length(len(ids), mt, "max_tokens")
    return Job(
        choices=choices(prompts, s, [mt] * len(prompts), logprobs, logprobs if echo else None),
        shape=CompletionShape(model.name, logprobs is not None),
        prompt_tokens=sum(len(p) for p in prompts),
        stream=s.stream,
        include_usage=s.include_usage,
        stops=s.stops,
        echo=echo,
    )


def completion_logprobs(entries: Sequence[LogprobEntry]) -> dict[str, list]:
    top: list[dict[str, float] | None] = []
    for e in entries:
        if e.logprob is None:
            top.append(None)
        else:
            alternatives = dict(e.top)
            alternatives.setdefault(e.text, e.logprob)  # the sampled token is always there (as vLLM)
            top.append(alternatives)
    return {
        "tokens": [e.text for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": top,
        "text_offset": [e.offset for e in entries],
    }


class _Envelope:
    def __init__(self, prefix: str, model: str):
        self.id = prefix + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = model
        self.done_marker = True  # streams end with `data: [DONE]`

    def envelope(self, kind: str) -> dict[str, object]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


class CompletionShape(_Envelope):
    def __init__(self, model: str, logprobs: bool):
        super().__init__("cmpl-", model)
        self.logprobs = logprobs

    def _choice(self, index: int, text: str, ids: list[int], entries: Sequence[LogprobEntry], reason: str | None):
        return {
            "index": index,
            "text": text,
            "token_ids": ids,
            "logprobs": completion_logprobs(entries) if self.logprobs else None,
            "finish_reason": reason,
        }

    def opening(self, choices: int) -> list[dict]:
        return []

    def chunk(self, out: ChoiceOutput, delta: Delta) -> list[dict]:
        if not (delta.text or delta.token_ids or delta.logprobs or out.done):
            return []
        choice = self._choice(out.index, delta.text, delta.token_ids, delta.logprobs, out.finish_reason)
        return [{**self.envelope("text_completion"), "choices": [choice]}]

    def usage_chunk(self, usage: dict[str, int]) -> dict | None:
        return {**self.envelope("text_completion"), "choices": [], "usage": usage}

    def response(self, outs: Sequence[ChoiceOutput], usage: dict[str, int]) -> dict:
        choices = [self._choice(o.index, o.text, o.token_ids, o.logprobs, o.finish_reason) for o in outs]
        return {**self.envelope("text_completion"), "choices": choices, "usage": usage}


# --- /v1/chat/completions -----------------------------------------------------------------------


def messages(body: Body) -> list[dict[str, str]]:
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", "messages")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]."
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object", f"messages[{i}]")
        refuse_unknown(m, ("role", "content"), where)
        role = string(m, "role", where)
        if role not in ROLES:
            raise ApiError(400, f"{where}role must be one of {', '.join(ROLES)}", where + "role")
        out.append({"role": role, "content": content(m.get("content"), where + "content")})
    return out


def content(value: object, param: str) -> str:
    """A string, or a list of text parts ({"type": "text", "text": ...}) joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, dict)
        and p.get("type") == "text"
        and isinstance(p.get("text"), str)
        and set(p) <= {"type", "text"}
        for p in value
    ):
        return "".join(p["text"] for p in value)
    raise ApiError(400, f"{param} must be a string or a list of text parts (only text is supported)", param)


def parse_chat(body: Body, model: Model) -> Job:
    refuse_unknown(body, CHAT_FIELDS)
    if model.chat_template is None:
        raise ApiError(400, "chat needs a tokenizer; this model directory has none", "messages")
    prompt = model.encode(model.chat_template.render(messages(body)), "messages")
    s = sampling(body, model, 1)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise ApiError(400, "give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    mt = integer(body, key, None, 1, model.max_context)
    mt = model.room(len(prompt)) if mt is None else mt
    model.check_length(len(prompt), max(mt, 1), key)
    want = boolean(body, "logprobs", False)
    top = integer(body, "top_logprobs", None, 0, MAX_LOGPROBS)
    if top is not None and not want:
        raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs")
    return Job(
        choices=choices([prompt], s, [mt], (top or 0) if want else None, None),
        shape=ChatShape(model.name, want),
        prompt_tokens=len(prompt),
        stream=s.stream,
        include_usage=s.include_usage,
        stops=s.stops,
    )


def chat_logprobs(entries: Sequence[LogprobEntry]) -> dict[str, list]:
    def item(text: str, logprob: float) -> dict[str, object]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {
        "content": [{**item(e.text, e.logprob or 0.0), "top_logprobs": [item(t, v) for t, v in e.top]} for e in entries]
    }


class ChatShape(_Envelope):
    def __init__(self, model: str, logprobs: bool):
        super().__init__("chatcmpl-", model)
        self.logprobs = logprobs

    def _logprobs(self, entries: Sequence[LogprobEntry]) -> dict | None:
        return chat_logprobs(entries) if self.logprobs else None

    def opening(self, choices: int) -> list[dict]:
        return [
            {
                **self.envelope("chat.completion.chunk"),
                "choices": [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                ],
            }
            for i in range(choices)
        ]

    def chunk(self, out: ChoiceOutput, delta: Delta) -> list[dict]:
        if not (delta.text or delta.logprobs or out.done):
            return []
        choice = {
            "index": out.index,
            "delta": {"content": delta.text} if delta.text else {},
            "logprobs": self._logprobs(delta.logprobs),
            "finish_reason": out.finish_reason,
        }
        return [{**self.envelope("chat.completion.chunk"), "choices": [choice]}]

    def usage_chunk(self, usage: dict[str, int]) -> dict | None:
        return {**self.envelope("chat.completion.chunk"), "choices": [], "usage": usage}

    def response(self, outs: Sequence[ChoiceOutput], usage: dict[str, int]) -> dict:
        choices = [
            {
                "index": o.index,
                "message": {"role": "assistant", "content": o.text},
                "logprobs": self._logprobs(o.logprobs),
                "finish_reason": o.finish_reason,
                "token_ids": o.token_ids,
            }
            for o in outs
        ]
        return {**self.envelope("chat.completion"), "choices": choices, "usage": usage}


def models_list(model: str, created: int) -> dict:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "bloom-operator"}],
    }
