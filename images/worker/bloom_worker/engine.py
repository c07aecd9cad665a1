"""Continuous batching with every rank in lockstep.

Rank 0 owns the requests (scheduler.py). Every step it broadcasts a header (the shapes) and one flat
payload (step_plan.py: a decode pass and a prefill pass, with the block tables); every rank runs the
same passes through the paged KV cache, and rank 0 alone receives what it samples from. While idle,
rank 0 broadcasts an idle header every second, so a dead peer is noticed and no collective waits past
its timeout.

A pass that raises on every rank (CUDA out of memory, an injected fault) fails the requests of that
pass only: the ranks agree on each pass's outcome with one small all-reduce on the control channel,
so they stay in lockstep and the group keeps serving. A rank that fails alone, or a collective that
breaks, is a group failure (run_leader / run_follower raise and the rank exits).

The engine thread beats `progress` (health.Progress, the rank's liveness) at every turn of its loop,
idle or not; its collectives and forward passes are marked on it, so a rank blocked in one stops beating
and says where.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import torch

from .engine_config import DEFAULT_CPU_CACHE_TOKENS, EngineConfig
from .health import Progress
from .kv_cache import BlockAllocator
from .metrics import Metrics
from .model import BloomTP
from .scheduler import Scheduler, Step
from .sequence import Request
from .step_plan import CMD_IDLE, CMD_STEP, CMD_STOP, HEADER, MODE_LAST, Pass, Row, StepPlan, idle_header

log = logging.getLogger("bloom_worker.engine")

IDLE_BEAT_S = 1.0


def probe_passes(cfg: EngineConfig) -> list[Pass]:
    """The largest passes the scheduler can plan, over one context of blocks (rows share it)."""
    chunk = min(cfg.scheduler.prefill_chunk, cfg.max_context)
    table = list(range(-(-cfg.max_context // cfg.block_size)))
    return [
        Pass.of([Row([0] * chunk, cfg.max_context - chunk, table, MODE_LAST)]),
        Pass.of([Row([0], cfg.max_context - 1, table, MODE_LAST)] * cfg.scheduler.max_running),
    ]


@dataclass(frozen=True)
class PassOutcome:
    top: torch.Tensor | None
    full: torch.Tensor | None
    error: BaseException | None


class Engine:
    def __init__(self, model: BloomTP, metrics: Metrics, config: EngineConfig, progress: Progress | None = None):
        self.model = model
        self.comm = model.comm
        if progress is None:
            progress = self.comm.progress if self.comm.progress is not None else Progress()
        self.progress = progress
        self.metrics = metrics
        self.config = config
        self.stopping = threading.Event()
        num_blocks = self._num_blocks()
        self.cache = model.new_cache(num_blocks, config.block_size)
        self.capacity_tokens = num_blocks * config.block_size
        self.max_context = min(config.max_context, model.max_context, self.capacity_tokens)
        self.vocab_size = model.cfg.vocab_size
        self.scheduler = Scheduler(
            BlockAllocator(num_blocks, config.block_size), config.scheduler, metrics, model.cfg.eos_token_id
        )
        log.info("KV cache: %d blocks of %d tokens (%d tokens)", num_blocks, config.block_size, self.capacity_tokens)

    def _num_blocks(self) -> int:
        """The same on every rank: the smallest any rank can hold."""
        cfg = self.config
        if cfg.kv_cache_tokens is not None or self.model.device.type != "cuda":
            tokens = cfg.kv_cache_tokens or DEFAULT_CPU_CACHE_TOKENS
            blocks = max(1, tokens // cfg.block_size)
        else:
            blocks = self._blocks_from_memory()
        agreed = self.comm.min(blocks)  # every rank raises together, or none does
        if agreed < 1:
            raise RuntimeError(
                "no GPU memory is left for the KV cache after the weights and the largest pass"
                " (raise BLOOM_GPU_MEMORY_UTILIZATION, or lower BLOOM_PREFILL_CHUNK_TOKENS or BLOOM_MAX_CONTEXT)"
            )
        return agreed

    def _blocks_from_memory(self) -> int:
        """vLLM's profile: run the largest passes the scheduler can plan (a full prefill chunk at the end of
        the longest context; every running row decoding at the longest context: their rows share one
        throwaway context of blocks), then give the cache what is left of the memory budget above that
        peak."""
        dev, cfg = self.model.device, self.config
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        probe = self.model.new_cache(-(-cfg.max_context // cfg.block_size), cfg.block_size)
        for p in probe_passes(cfg):
            self.model.head(self.model.forward(p, probe), p)
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - sum(t.numel() * t.element_size() for t in probe.k + probe.v)
        del probe
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(dev).total_memory
        budget = int(total * cfg.gpu_memory_utilization) - peak
        log.info("KV cache budget: %d MiB (peak of the largest pass %d MiB)", max(0, budget) >> 20, peak >> 20)
        return max(0, budget // self.model.block_bytes(cfg.block_size))

    # --- any thread -------------------------------------------------------------------------
    def submit(self, req: Request) -> None:
        if self.stopping.is_set():
            raise RuntimeError("the worker is shutting down")
        self.scheduler.submit(req)

    # --- every rank -------------------------------------------------------------------------
    def _run_pass(self, p: Pass) -> PassOutcome:
        top = full = error = None
        try:
            if self.config.fail_pass_with_tokens == int(p.nvalid.sum()):
                raise torch.OutOfMemoryError(f"injected out of memory (a pass of {int(p.nvalid.sum())} tokens)")
            with self.progress.inside("forward"):  # on a GPU, .cpu() waits for the device (and its NCCL)
                top, full = self.model.head(self.model.forward(p, self.cache), p)
                top = top.cpu() if top is not None else None
                if full is not None and self.model.device.type == "cuda":
                    torch.cuda.synchronize(self.model.device)
        except Exception as e:  # noqa: BLE001  # judged below, together with the other ranks
            error = e
        if self.comm.min(int(error is None)) == 0:
            if isinstance(error, torch.OutOfMemoryError) and self.model.device.type == "cuda":
                torch.cuda.empty_cache()
            return PassOutcome(None, None, error or RuntimeError("the pass failed on another rank"))
        return PassOutcome(top, full, None)

    def _run_step(self, plan: StepPlan) -> list[PassOutcome | None]:
        return [self._run_pass(p) if p is not None else None for p in (plan.decode, plan.prefill)]

    # --- rank 0 -----------------------------------------------------------------------------
    def run_leader(self) -> None:
        sched = self.scheduler
        while True:
            self.progress.beat()
            if self.stopping.is_set():
                sched.fail_all(503, "the worker is shutting down")
                self.comm.broadcast(idle_header(CMD_STOP))
                return
            step = sched.schedule(time.monotonic())
            if step is None:
                if not sched.wait_for_work(IDLE_BEAT_S):
                    self.comm.broadcast(idle_header(CMD_IDLE))
                continue
            self.comm.broadcast(step.plan.header(CMD_STEP))
            self.comm.broadcast(step.plan.payload())
            self._complete(step, self._run_step(step.plan))

    def _complete(self, step: Step, outcomes: list[PassOutcome | None]) -> None:
        failed = [
            (rows, o.error)
            for rows, o in zip((step.decode, step.prefill), outcomes, strict=True)
            if o is not None and o.error is not None
        ]
        for rows, error in failed:
            oom = isinstance(error, torch.OutOfMemoryError)
            log.error("a pass of %d rows failed: %s", len(rows), error)
            self.scheduler.fail(
                [s.seq for s in rows],
                503 if oom else 500,
                f"{'out of memory' if oom else 'generation failed'}: {str(error).splitlines()[0][:300]}",
            )
        ok = [o if o is not None and o.error is None else None for o in outcomes]
        kept = Step(
            step.plan,
            step.decode if ok[0] is not None else [],
            step.prefill if ok[1] is not None else [],
        )
        self.scheduler.complete(kept, [o.top if o else None for o in ok], [o.full if o else None for o in ok])

    # --- the other ranks --------------------------------------------------------------------
    def run_follower(self) -> None:
        while True:
            self.progress.beat()
            header = self.comm.broadcast(torch.empty(HEADER, dtype=torch.int64)).tolist()
            if header[0] == CMD_STOP:
                return
            if header[0] == CMD_IDLE:
                if self.stopping.is_set():
                    return
                continue
            payload = self.comm.broadcast(torch.empty(StepPlan.payload_size(header), dtype=torch.int64))
            self._run_step(StepPlan.parse(header, payload))
