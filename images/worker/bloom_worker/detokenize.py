"""Incremental detokenization and stop strings, for text that is streamed token by token.

BLOOM's byte-level BPE splits characters across tokens: decoding a prefix of the ids can end in a
partial UTF-8 sequence, which decodes as U+FFFD. `Detokenizer` holds such bytes back as vLLM and TGI
do: it decodes a short window (prefix offset .. end) and emits the new text only when it does not end
in U+FFFD, so the concatenation of its deltas is the decoding of all the ids, never a replacement
character that a later token completes.

`StopText` holds back, in the same way, any tail of the text that could be the start of a stop
string: no part of a stop string is ever emitted, and the text ends before the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"

Decode = Callable[[list[int]], str]


class Detokenizer:
    def __init__(self, decode: Decode):
        self.decode = decode
        self.ids: list[int] = []
        self.prefix = 0  # the window decoded for each new token starts here
        self.read = 0  # text of ids[:read] has been emitted

    def add(self, token: int) -> str:
        """The text that `token` completes (may be empty: a partial character is held back)."""
        self.ids.append(token)
        before = self.decode(self.ids[self.prefix : self.read])
        now = self.decode(self.ids[self.prefix :])
        if len(now) > len(before) and not now.endswith(REPLACEMENT):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is held back (incomplete bytes decode as U+FFFD, as a full decode gives them)."""
        before = self.decode(self.ids[self.prefix : self.read])
        now = self.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return now[len(before) :]


def held_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


class StopText:
    """The generated text with stop strings: `add` returns what can be emitted now; `stopped` is set
    when a stop string appeared (the text then ends before it and nothing more is emitted)."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.text = ""
        self.sent = 0
        self.stopped = False

    def add(self, delta: str) -> str:
        if self.stopped:
            return ""
        self.text += delta
        found = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        if found:
            end = min(found)
            self.stopped = True
        else:
            end = len(self.text) - held_suffix(self.text[self.sent :], self.stops)
        out, self.sent = self.text[self.sent : end], end
        self.text = self.text[:end] if self.stopped else self.text
        return out

    def flush(self) -> str:
        """At the end of generation (no stop string): the held-back tail."""
        if self.stopped:
            return ""
        out, self.sent = self.text[self.sent :], len(self.text)
        return out
