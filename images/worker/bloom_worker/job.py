"""What a parsed API request becomes: a `Job` of choices (one engine Request each) and the `Shape` of
its answer; `Model` is what request parsing needs to know about the served model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .chat_template import ChatTemplate
from .format import Manifest
from .output import ChoiceOutput, Delta
from .sequence import SamplingParams
from .tokenizer import Tokenizer, load_tokenizer
from .validate import ApiError


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_choices: int = 32  # prompts x n of one request
    request_timeout_s: float = 600.0


@dataclass(frozen=True)
class Model:
    name: str
    vocab_size: int
    max_context: int  # prompt + max_tokens
    capacity_tokens: int  # the KV cache: a longer request could never run
    tokenizer: Tokenizer | None
    chat_template: ChatTemplate | None
    limits: Limits

    @staticmethod
    def serving(name: str, engine: object, manifest: Manifest, model_dir: Path, limits: Limits) -> Model:
        """The model an engine serves (its context and KV cache bounds), with the directory's tokenizer
        and the manifest's chat template (the default one without)."""
        tok = load_tokenizer(model_dir) if manifest.tokenizer else None
        cfg = manifest.config
        template = (
            ChatTemplate(manifest.chat_template, tok.token(cfg.bos_token_id), tok.token(cfg.eos_token_id))
            if tok is not None
            else None
        )
        return Model(
            name=name,
            vocab_size=engine.vocab_size,  # type: ignore[attr-defined]
            max_context=engine.max_context,  # type: ignore[attr-defined]
            capacity_tokens=engine.capacity_tokens,  # type: ignore[attr-defined]
            tokenizer=tok,
            chat_template=template,
            limits=limits,
        )

    def encode(self, text: str, param: str) -> list[int]:
        if self.tokenizer is None:
            raise ApiError(400, f"this model directory has no tokenizer; send {param} as token ids", param)
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ApiError(400, f"{param} is not valid Unicode (it holds a lone surrogate)", param) from None
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ApiError(400, f"{param} is empty", param)
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids) if self.tokenizer is not None else ""

    def room(self, prompt_len: int) -> int:
        """The most tokens a request with this prompt can generate."""
        return min(self.max_context, self.capacity_tokens) - prompt_len

    def check_length(self, prompt_len: int, max_tokens: int, param: str) -> None:
        total = prompt_len + max_tokens
        if total > self.max_context:
            raise ApiError(
                400,
                f"this model's maximum context length is {self.max_context} tokens; the request needs {total}"
                f" ({prompt_len} in the prompt, {max_tokens} for the completion): reduce the prompt or {param}",
                param,
            )
        if total > self.capacity_tokens:
            raise ApiError(
                400,
                f"the request needs {total} tokens of KV cache ({prompt_len} in the prompt, {max_tokens} for the"
                f" completion); this group holds at most {self.capacity_tokens}: reduce the prompt or {param}",
                param,
            )


@dataclass(frozen=True)
class Choice:
    prompt: list[int]
    params: SamplingParams


class Shape(Protocol):
    """The answer of one endpoint: stream events and the whole response."""

    done_marker: bool  # the stream ends with `data: [DONE]`

    def opening(self, choices: int) -> list[dict]: ...

    def chunk(self, out: ChoiceOutput, delta: Delta) -> list[dict]: ...

    def usage_chunk(self, usage: dict[str, int]) -> dict | None: ...

    def response(self, outs: Sequence[ChoiceOutput], usage: dict[str, int]) -> dict: ...


@dataclass(frozen=True)
class Job:
    choices: list[Choice]
    shape: Shape
    prompt_tokens: int  # of the distinct prompts (n choices of one prompt count it once)
    stream: bool = False
    include_usage: bool = False
    stops: tuple[str, ...] = ()
    echo: bool = False


def usage(job: Job, outs: Sequence[ChoiceOutput]) -> dict[str, int]:
    completion = sum(len(o.token_ids) for o in outs)
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": job.prompt_tokens + completion,
    }
