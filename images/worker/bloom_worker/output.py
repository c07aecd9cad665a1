"""One choice's output as its engine events arrive: text (detokenized incrementally, echo, stop
strings), token ids and logprob entries, in the deltas a stream sends; the whole, for a response.

The same deltas make the streamed and the non-streamed answer, so the two are equal by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .detokenize import Decode, Detokenizer, StopText
from .sequence import Event, Finished, PromptLogprobs, Token, TokenLogprob


@dataclass(frozen=True)
class LogprobEntry:
    token: int
    text: str  # the token decoded alone
    logprob: float | None  # None: the first prompt token (nothing predicts it)
    top: tuple[tuple[str, float], ...]  # (text, logprob) of the alternatives, best first
    offset: int  # characters of the choice's text before this token


@dataclass
class Delta:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[LogprobEntry] = field(default_factory=list)


class ChoiceOutput:
    def __init__(self, index: int, prompt: Sequence[int], decode: Decode, stops: Sequence[str], echo: bool):
        self.index = index
        self.prompt = list(prompt)
        self.decode = decode
        self.echo = echo
        self.detok = Detokenizer(decode)
        self.stop = StopText(stops)
        self.text = ""
        self.token_ids: list[int] = []
        self.logprobs: list[LogprobEntry] = []
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def _logprob(self, delta: Delta, token: int, lp: TokenLogprob | None) -> None:
        top = tuple((self.decode([t]), v) for t, v in lp.top) if lp is not None else ()
        entry = LogprobEntry(token, self.decode([token]), lp.logprob if lp is not None else None, top, len(self.text))
        delta.logprobs.append(entry)
        self.logprobs.append(entry)

    def _emit(self, delta: Delta, text: str) -> Delta:
        delta.text += text
        self.text += text
        return delta

    def start(self, prompt_logprobs: bool) -> Delta:
        """Echo without prompt logprobs: the prompt's text at once (else it comes with PromptLogprobs)."""
        if not self.echo or prompt_logprobs:
            return Delta()
        return self._emit(Delta(), "".join(self.detok.add(t) for t in self.prompt))

    def on(self, event: Event) -> Delta:
        """The delta that `event` adds; sets `finish_reason` on the last one (Failed is the caller's)."""
        if self.done:
            return Delta()
        delta = Delta()
        if isinstance(event, PromptLogprobs) and event.entries:
            for token, lp in zip(self.prompt, event.entries, strict=True):
                self._logprob(delta, token, lp)
                self._emit(delta, self.detok.add(token))
        elif isinstance(event, Token):
            delta.token_ids.append(event.id)
            self.token_ids.append(event.id)
            if event.logprob is not None:
                self._logprob(delta, event.id, event.logprob)
            self._emit(delta, self.stop.add(self.detok.add(event.id)))
            if self.stop.stopped:
                self.finish_reason = "stop"
        elif isinstance(event, Finished):
            self._emit(delta, self.stop.add(self.detok.flush()))
            self._emit(delta, self.stop.flush())
            self.finish_reason = "stop" if self.stop.stopped else event.reason
        return delta
