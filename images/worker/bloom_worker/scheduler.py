"""Rank 0's iteration-level scheduler: which sequences run in the next step, and with which cache blocks.

Every step, in this order:
1. requests submitted since the last step join the waiting queue (bounded: `submit` raises QueueFull);
2. cancelled and expired sequences leave, waiting or running, and free their blocks at once;
3. every running sequence with one token to feed (it is decoding) gets a decode row; one that needs a
   new block and finds none preempts the most recently admitted running sequence (its blocks are freed
   and it waits again at the front, to recompute its prompt and what it generated: vLLM's recompute);
4. waiting sequences are admitted first come, first served while a running slot and the blocks of their
   whole prompt are free (plus a watermark, so admitted sequences can grow without preempting at once);
   admission never reserves for the output: blocks are taken one at a time as tokens are generated;
5. sequences with prompt tokens left get prefill rows, chunked to a token budget per step, so a long
   prompt never stalls the running sequences for more than one chunk.

`complete` then turns the step's logits into tokens (sampling.py) and events on each request's queue.
Nothing here touches a collective: the engine broadcasts the plan and runs it on every rank.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .engine_config import SchedulerConfig
from .kv_cache import BlockAllocator
from .metrics import Metrics
from .sampling import choose, logprobs_of, new_generator, penalize
from .sequence import Failed, Finished, PromptLogprobs, QueueFull, Request, SamplingParams, Token, TokenLogprob
from .step_plan import MODE_ALL, MODE_ARGMAX, MODE_LAST, MODE_NONE, Pass, Row, StepPlan


@dataclass(eq=False)
class Sequence:
    req: Request
    tokens: list[int]  # prompt, then what was generated
    prompt_len: int
    blocks: list[int] = field(default_factory=list)
    computed: int = 0  # tokens whose keys and values are in the cache
    generator: torch.Generator | None = None
    prompt_entries: list[TokenLogprob | None] = field(default_factory=list)
    prompt_logits: list[torch.Tensor] = field(default_factory=list)
    prompt_done: bool = False  # PromptLogprobs emitted (never twice, even after a preemption)
    admitted_at: float | None = None
    last_token_at: float | None = None

    @property
    def params(self) -> SamplingParams:
        return self.req.params

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.computed

    @property
    def wants_prompt_logprobs(self) -> bool:
        return not self.prompt_done and (self.params.prompt_logprobs is not None or self.params.debug_logits)

    @property
    def wants_token(self) -> bool:
        return len(self.generated) < self.params.max_tokens

    def token_mode(self) -> int:
        p = self.params
        return MODE_ARGMAX if p.greedy and not p.penalized and p.logprobs is None else MODE_LAST


@dataclass(frozen=True)
class Scheduled:
    seq: Sequence
    row: Row


@dataclass
class Step:
    plan: StepPlan
    decode: list[Scheduled]
    prefill: list[Scheduled]


class Scheduler:
    def __init__(self, allocator: BlockAllocator, config: SchedulerConfig, metrics: Metrics, eos: int):
        self.alloc = allocator
        self.eos = eos
        self.config = config
        self.metrics = metrics
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._inbox: list[Sequence] = []
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)
        self._gauges()

    # --- any thread -------------------------------------------------------------------------
    def submit(self, req: Request) -> None:
        with self._lock:
            waiting = len(self._inbox) + len(self.waiting)
            if waiting >= self.config.max_waiting:
                raise QueueFull(waiting)
            self._inbox.append(Sequence(req=req, tokens=list(req.ids), prompt_len=len(req.ids)))
            self.arrived.notify()

    def wait_for_work(self, timeout: float) -> bool:
        """Whether a request arrived within `timeout`."""
        with self._lock:
            return bool(self._inbox) or self.arrived.wait_for(lambda: bool(self._inbox), timeout)

    # --- the engine thread ------------------------------------------------------------------
    def schedule(self, now: float) -> Step | None:
        with self._lock:
            self.waiting.extend(self._inbox)
            self._inbox.clear()
        self._reap(now)
        decode = self._decode_rows()
        self._admit(now)
        decoding = {id(s.seq) for s in decode}
        prefill = self._prefill_rows([s for s in self.running if id(s) not in decoding])
        self._gauges()
        if not decode and not prefill:
            return None
        plan = StepPlan(
            Pass.of([s.row for s in decode]) if decode else None,
            Pass.of([s.row for s in prefill]) if prefill else None,
        )
        return Step(plan, decode, prefill)

    def _reap(self, now: float) -> None:
        for seq in [*self.waiting, *self.running]:
            if seq.req.cancelled:
                self._finish(seq, Finished("cancelled"))
            elif seq.req.deadline is not None and now >= seq.req.deadline:
                self._finish(seq, Finished("timeout"))

    def _decode_rows(self) -> list[Scheduled]:
        rows = []
        for seq in list(self.running):
            if seq not in self.running or seq.computed == 0 or seq.pending != 1:
                continue
            if not self._reserve(seq, seq.computed + 1):
                continue  # preempted itself
            rows.append(Scheduled(seq, Row([seq.tokens[-1]], seq.computed, seq.blocks, seq.token_mode())))
        return rows  # a victim is always admitted after the sequence that needs its blocks: never a row above

    def _reserve(self, seq: Sequence, tokens: int) -> bool:
        """Blocks for `tokens` positions of `seq`, preempting the latest admitted sequences while none is
        free; False when `seq` itself had to go."""
        need = self.alloc.blocks_for(tokens) - len(seq.blocks)
        while need > self.alloc.free:
            victim = self.running[-1]
            self._preempt(victim)
            if victim is seq:
                return False
        if need > 0:
            seq.blocks.extend(self.alloc.allocate(need))
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.alloc.release(seq.blocks)
        seq.blocks, seq.computed = [], 0
        seq.prompt_entries, seq.prompt_logits = [], []  # recomputed from the start unless emitted already
        self.waiting.appendleft(seq)
        self.metrics.inc("bloom_worker_preemptions_total")

    def _admit(self, now: float) -> None:
        reserve = int(self.alloc.num_blocks * self.config.watermark)
        while self.waiting and len(self.running) < self.config.max_running:
            seq = self.waiting[0]
            need = self.alloc.blocks_for(len(seq.tokens))
            if need > self.alloc.num_blocks:  # the API refuses these; never let one block the queue
                self._finish(seq, Failed(400, f"{len(seq.tokens)} tokens exceed the KV cache"))
                continue
            if need + reserve > self.alloc.free and self.running:
                return
            self.waiting.popleft()
            seq.blocks = self.alloc.allocate(need)
            if seq.admitted_at is None:
                seq.admitted_at = now
                self.metrics.observe("bloom_worker_queue_time_seconds", now - seq.req.arrived)
                self.metrics.inc("bloom_worker_prompt_tokens_total", seq.prompt_len)
            self.running.append(seq)

    def _prefill_rows(self, candidates: list[Sequence]) -> list[Scheduled]:
        budget = self.config.prefill_chunk
        chosen: list[tuple[Sequence, int]] = []
        width = 0
        for seq in candidates:
            if seq.pending == 0:
                continue
            cap = self.config.prompt_logprobs_chunk if seq.wants_prompt_logprobs else budget
            n = min(seq.pending, cap, max(width, budget // (len(chosen) + 1)))
            if n == 0 or (len(chosen) + 1) * max(width, n) > budget:
                break
            width = max(width, n)
            chosen.append((seq, n))
        return [Scheduled(seq, self._prefill_row(seq, n)) for seq, n in chosen]

    def _prefill_row(self, seq: Sequence, n: int) -> Row:
        final = seq.computed + n == len(seq.tokens)
        if seq.wants_prompt_logprobs:
            mode = MODE_ALL
        elif final and seq.wants_token:
            mode = seq.token_mode()
        else:
            mode = MODE_NONE
        return Row(seq.tokens[seq.computed : seq.computed + n], seq.computed, seq.blocks, mode)

    # --- results ----------------------------------------------------------------------------
    def complete(self, step: Step, top: list[torch.Tensor | None], full: list[torch.Tensor | None]) -> None:
        """Rank 0 after a step: top[i] / full[i] are pass i's (decode, prefill) arg-max ids and full
        logits (model.head); None for a pass that did not run."""
        now = time.monotonic()
        to_sample: list[tuple[Sequence, torch.Tensor]] = []
        for rows, tops, fulls in ((step.decode, top[0], full[0]), (step.prefill, top[1], full[1])):
            top_it = iter(tops.tolist()) if tops is not None else iter(())
            full_it = iter(fulls) if fulls is not None else iter(())
            for s in rows:
                self._advance(s, top_it, full_it, to_sample, now)
        if to_sample:
            self._sample(to_sample, now)
        self.metrics.inc("bloom_worker_engine_steps_total")
        self._gauges()

    def _advance(
        self,
        s: Scheduled,
        top_it: Iterator[int],
        full_it: Iterator[torch.Tensor],
        to_sample: list[tuple[Sequence, torch.Tensor]],
        now: float,
    ) -> None:
        seq, row = s.seq, s.row
        n = len(row.ids)
        last: torch.Tensor | None = None
        if row.mode == MODE_ALL:
            chunk = torch.stack([next(full_it) for _ in range(n)])
            self._prompt_logprobs(seq, row.start, chunk)
            last = chunk[-1]
        elif row.mode == MODE_LAST:
            last = next(full_it)
        seq.computed += n
        if seq.computed < len(seq.tokens):
            return
        if seq.wants_prompt_logprobs:
            self._emit_prompt(seq)
        if not seq.wants_token:
            self._finish(seq, Finished("length"))
        elif row.mode == MODE_ARGMAX:
            self._append(seq, next(top_it), None, now)
        else:
            assert last is not None
            to_sample.append((seq, last))

    def _prompt_logprobs(self, seq: Sequence, start: int, logits: torch.Tensor) -> None:
        """Position p's logits predict prompt token p + 1."""
        upto = min(len(logits), seq.prompt_len - 1 - start)
        if seq.params.debug_logits:
            seq.prompt_logits.append(logits.cpu())
        if upto > 0 and seq.params.prompt_logprobs is not None:
            targets = seq.tokens[start + 1 : start + 1 + upto]
            seq.prompt_entries.extend(logprobs_of(logits[:upto], targets, seq.params.prompt_logprobs))

    def _emit_prompt(self, seq: Sequence) -> None:
        entries = (None, *seq.prompt_entries) if seq.params.prompt_logprobs is not None else ()
        logits = torch.cat(seq.prompt_logits) if seq.prompt_logits else None
        seq.req.events.put(PromptLogprobs(entries=entries, logits=logits))
        seq.prompt_done = True
        seq.prompt_entries, seq.prompt_logits = [], []

    def _sample(self, batch: list[tuple[Sequence, torch.Tensor]], now: float) -> None:
        seqs = [s for s, _ in batch]
        raw = torch.stack([logits for _, logits in batch])
        shaped = raw.clone()
        for i, seq in enumerate(seqs):
            if seq.params.penalized:
                penalize(shaped[i], seq.params, seq.tokens, seq.generated)
            if not seq.params.greedy and seq.generator is None:
                seq.generator = new_generator(seq.params.seed, raw.device)
        tokens = choose(shaped, [s.params for s in seqs], [s.generator for s in seqs])
        k = max((s.params.logprobs or 0) for s in seqs)
        wanted = [i for i, s in enumerate(seqs) if s.params.logprobs is not None]
        logprobs: dict[int, TokenLogprob] = {}
        if wanted:
            entries = logprobs_of(raw[wanted], [tokens[i] for i in wanted], k)
            for i, entry in zip(wanted, entries, strict=True):
                logprobs[i] = TokenLogprob(entry.token, entry.logprob, entry.top[: seqs[i].params.logprobs])
        for i, seq in enumerate(seqs):
            self._append(seq, tokens[i], logprobs.get(i), now)

    def _append(self, seq: Sequence, token: int, logprob: TokenLogprob | None, now: float) -> None:
        if token == self.eos and not seq.params.ignore_eos:
            self._finish(seq, Finished("stop"))
            return
        if seq.last_token_at is None:
            self.metrics.observe("bloom_worker_time_to_first_token_seconds", now - seq.req.arrived)
        else:
            self.metrics.observe("bloom_worker_inter_token_latency_seconds", now - seq.last_token_at)
        seq.last_token_at = now
        seq.tokens.append(token)
        self.metrics.inc("bloom_worker_generated_tokens_total")
        seq.req.events.put(Token(token, logprob))
        if not seq.wants_token:
            self._finish(seq, Finished("length"))

    # --- leaving ----------------------------------------------------------------------------
    def fail(self, seqs: list[Sequence], status: int, message: str) -> None:
        for seq in seqs:
            self._finish(seq, Failed(status, message))
        self._gauges()

    def fail_all(self, status: int, message: str) -> None:
        with self._lock:
            self.waiting.extend(self._inbox)
            self._inbox.clear()
        self.fail([*self.waiting, *self.running], status, message)

    def _finish(self, seq: Sequence, event: Finished | Failed) -> None:
        if seq in self.running:
            self.running.remove(seq)
            self.alloc.release(seq.blocks)
            seq.blocks = []
        elif seq in self.waiting:
            self.waiting.remove(seq)
        else:
            return
        seq.req.events.put(event)

    def _gauges(self) -> None:
        self.metrics.set("bloom_worker_running_requests", len(self.running))
        self.metrics.set("bloom_worker_waiting_requests", len(self.waiting) + len(self._inbox))
        self.metrics.set("bloom_worker_kv_blocks_used", self.alloc.used)
        self.metrics.set("bloom_worker_kv_blocks_total", self.alloc.num_blocks)
