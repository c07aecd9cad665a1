"""Batched generation with every rank in lockstep.

Rank 0 owns the request queue. Each batch starts with a header broadcast from rank 0 (command,
batch size, prompt length, flags), then the left-padded prompt ids and their lengths; all ranks run
the same forward passes; rank 0 picks the next tokens from the full logits (greedy or sampled) and
broadcasts them with a continue flag every step. While idle, rank 0 broadcasts a heartbeat every
second, so a dead peer is noticed within a second and no collective waits past its timeout.

The engine thread beats `progress` (health.Progress, the rank's liveness) at every turn of its loop,
idle or not, and at every decode step; its collectives and forward passes are marked on it, so a rank
blocked in one stops beating and says where.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .health import Progress
from .metrics import Metrics
from .model import BloomTP

log = logging.getLogger("bloom_worker.engine")

CMD_NOOP, CMD_BATCH, CMD_STOP = 0, 1, 2
HEADER = 5  # cmd, batch, prompt length, want prompt logits, max new tokens


@dataclass
class Request:
    ids: list[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop_at_eos: bool = True
    want_logits: bool = False
    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    enqueued: float = field(default_factory=time.monotonic)


class Engine:
    def __init__(
        self,
        model: BloomTP,
        metrics: Metrics,
        max_batch: int = 8,
        batch_wait_s: float = 0.005,
        progress: Progress | None = None,
    ):
        self.model = model
        self.comm = model.comm
        if progress is None:
            progress = self.comm.progress if self.comm.progress is not None else Progress()
        self.progress = progress
        self.metrics = metrics
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.queue: queue.Queue[Request] = queue.Queue()
        self.stopping = threading.Event()
        self.eos = model.cfg.eos_token_id

    # --- rank 0 ----------------------------------------------------------------------------
    def submit(self, req: Request) -> Request:
        self.queue.put(req)
        self.metrics.set("bloom_worker_queue_depth", self.queue.qsize())
        return req

    def _take_batch(self) -> list[Request]:
        try:
            first = self.queue.get(timeout=1.0)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        self.metrics.set("bloom_worker_queue_depth", self.queue.qsize())
        return batch

    def _header(self, cmd: int, b: int = 0, t: int = 0, logits: int = 0, max_new: int = 0) -> torch.Tensor:
        return self.comm.broadcast(torch.tensor([cmd, b, t, logits, max_new], dtype=torch.int64))

    def run_leader(self) -> None:
        while True:
            self.progress.beat()
            if self.stopping.is_set():
                self._header(CMD_STOP)
                return
            batch = self._take_batch()
            if not batch:
                self._header(CMD_NOOP)
                continue
            try:
                self._leader_batch(batch)
            except Exception as e:
                for r in batch:
                    r.events.put(("error", str(e)))
                raise

    def _leader_batch(self, batch: list[Request]) -> None:
        b = len(batch)
        t = max(len(r.ids) for r in batch)
        want = int(any(r.want_logits for r in batch))
        max_new = max(r.max_new_tokens for r in batch)
        self._header(CMD_BATCH, b, t, want, max_new)
        ids = torch.full((b, t), self.model.cfg.pad_token_id, dtype=torch.int64)
        lengths = torch.tensor([len(r.ids) for r in batch], dtype=torch.int64)
        for i, r in enumerate(batch):
            ids[i, t - len(r.ids) :] = torch.tensor(r.ids, dtype=torch.int64)
        self.comm.broadcast(ids)
        self.comm.broadcast(lengths)
        gens = []
        for r in batch:
            g = torch.Generator()
            g.manual_seed(r.seed if r.seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
            gens.append(g)
        started = time.monotonic()
        self.metrics.inc("bloom_worker_batches_total")
        self.metrics.inc("bloom_worker_batch_rows_total", b)
        self.metrics.inc("bloom_worker_prompt_tokens_total", int(lengths.sum()))
        produced = [0] * b
        done = [False] * b

        def step(logits: torch.Tensor) -> torch.Tensor:
            nxt = torch.zeros(b + 1, dtype=torch.int64)
            for i, r in enumerate(batch):
                if done[i]:
                    nxt[i] = self.model.cfg.pad_token_id
                    continue
                tok = sample(logits[i], r.temperature, r.top_p, gens[i])
                nxt[i] = tok
                if r.stop_at_eos and tok == self.eos:
                    done[i] = True
                    r.events.put(("done", "stop"))
                    continue
                produced[i] += 1
                r.events.put(("token", tok))
                if produced[i] >= r.max_new_tokens:
                    done[i] = True
                    r.events.put(("done", "length"))
            nxt[b] = int(not all(done))
            return nxt

        logits, cache, mask = self._prefill(ids, lengths, t + max_new, bool(want))
        if want:
            for i, r in enumerate(batch):
                if r.want_logits:
                    r.events.put(("logits", logits[i, t - len(r.ids) :].tolist()))
            logits = logits[:, -1]
        while True:
            self.progress.beat()
            nxt = self.comm.broadcast(step(logits))
            if not int(nxt[b]):
                break
            logits = self._decode(nxt[:b], cache, mask)
        n = sum(produced)
        self.metrics.inc("bloom_worker_generated_tokens_total", n)
        self.metrics.observe("bloom_worker_batch_seconds", time.monotonic() - started)

    # --- every rank --------------------------------------------------------------------------
    def _prefill(self, ids: torch.Tensor, lengths: torch.Tensor, max_len: int, all_logits: bool):
        b, t = ids.shape
        cache = self.model.new_cache(b, max_len)
        mask = torch.zeros(b, max_len, dtype=torch.bool)
        for i in range(b):
            mask[i, t - int(lengths[i]) :] = True
        dev = self.model.device
        with self.progress.inside("forward"):  # on a GPU, .cpu() waits for the device (and its NCCL)
            mask = mask.to(dev)
            logits = self.model.forward(ids.to(dev), cache, mask, all_logits=all_logits).cpu()
        return logits, cache, mask

    def _decode(self, tokens: torch.Tensor, cache, mask: torch.Tensor) -> torch.Tensor:
        with self.progress.inside("forward"):
            return self.model.forward(tokens.view(-1, 1).to(self.model.device), cache, mask).cpu()

    def run_follower(self) -> None:
        while True:
            self.progress.beat()
            header = self._header(CMD_NOOP)
            cmd, b, t, want, max_new = (int(v) for v in header)
            if cmd == CMD_STOP:
                return
            if cmd == CMD_NOOP:
                if self.stopping.is_set():
                    return
                continue
            ids = self.comm.broadcast(torch.empty(b, t, dtype=torch.int64))
            lengths = self.comm.broadcast(torch.empty(b, dtype=torch.int64))
            _, cache, mask = self._prefill(ids, lengths, t + max_new, bool(want))
            while True:
                self.progress.beat()
                nxt = self.comm.broadcast(torch.empty(b + 1, dtype=torch.int64))
                if not int(nxt[b]):
                    break
                self._decode(nxt[:b], cache, mask)


def sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter_(0, idx[keep], sorted_p[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=gen))
