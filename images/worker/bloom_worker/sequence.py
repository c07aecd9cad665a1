"""What the API hands the engine (a Request with its SamplingParams) and what the engine hands back, on
the request's own queue, as the request runs: PromptLogprobs (once, first, when asked), a Token per
generated token, then exactly one Finished or Failed.

The API validates every field before a request is submitted (the engine trusts them): ids inside the
vocabulary, len(ids) + max_tokens within `Engine.max_context` and `Engine.capacity_tokens`, temperature
0 or >= MIN_TEMPERATURE, 0 < top_p <= 1, 0 <= seed < 2**63, logprobs counts <= MAX_LOGPROBS.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import torch

MIN_TEMPERATURE = 1e-2  # below it, softmax(logits / T) overflows in fp32: send 0 (greedy) instead
MAX_LOGPROBS = 20
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int  # 0: prefill only (echo with prompt logprobs)
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    seed: int | None = None
    presence_penalty: float = 0.0  # OpenAI's, on the logits of tokens generated so far
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0  # TGI's (CTRL-style: positive logits divided, negative multiplied)
    ignore_eos: bool = False
    logprobs: int | None = None  # top alternatives per generated token (0..MAX_LOGPROBS); None: none
    prompt_logprobs: int | None = None  # the same for every prompt token after the first (echo)
    debug_logits: bool = False  # the prompt's raw full-vocab logits (BLOOM_DEBUG_API only)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def penalized(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0 or self.repetition_penalty != 1.0


@dataclass(frozen=True)
class TokenLogprob:
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()  # (token, logprob), best first


@dataclass(frozen=True)
class PromptLogprobs:
    entries: tuple[TokenLogprob | None, ...]  # one per prompt token; the first is None (nothing predicts it)
    logits: torch.Tensor | None = None  # [prompt, vocab] fp32, only for debug_logits


@dataclass(frozen=True)
class Token:
    id: int
    logprob: TokenLogprob | None = None  # when params.logprobs is not None


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" (end of sequence), "length", "cancelled", "timeout"


@dataclass(frozen=True)
class Failed:
    status: int  # the HTTP status the API answers with (500, or 503 for out of memory)
    message: str


Event = PromptLogprobs | Token | Finished | Failed


@dataclass(eq=False)
class Request:
    ids: list[int]
    params: SamplingParams
    deadline: float | None = None  # time.monotonic(); past it the engine finishes the request ("timeout")
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    arrived: float = field(default_factory=time.monotonic)
    _cancel: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Leave the engine at its next step (client gone, stop string seen); the engine answers Finished
        ("cancelled") unless the request had finished already."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


class QueueFull(Exception):
    """The engine's waiting queue is at its bound: answer 429 with Retry-After."""

    def __init__(self, waiting: int, retry_after_s: int = 1):
        super().__init__(f"{waiting} requests are waiting already; retry later")
        self.retry_after_s = retry_after_s
