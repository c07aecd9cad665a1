"""The continuous-batching engine in this process (rank 0 leading a group of one, the same code path as
a real group's rank 0): scheduling, preemption, cancellation, failures of one pass, sampling.

The real multi-process group (gloo, TP=2) is exercised through the HTTP API in test_serving.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from bloom_worker.engine import Engine, probe_passes
from bloom_worker.engine_config import EngineConfig, SchedulerConfig
from bloom_worker.metrics import Metrics
from bloom_worker.sequence import Event, Failed, Finished, PromptLogprobs, QueueFull, Request, SamplingParams, Token
from worker_helpers import local_model

PROMPTS = [[5 + i % 7, 100 - i, 42 + 3 * i, *range(10, 10 + (i * 5) % 37)] for i in range(16)]


@contextmanager
def running(shard: Path, **config: object) -> Iterator[Engine]:
    sched = {k: config.pop(k) for k in list(config) if k in SchedulerConfig.__dataclass_fields__}
    engine = Engine(local_model(shard), Metrics(), EngineConfig(scheduler=SchedulerConfig(**sched), **config))  # type: ignore[arg-type]
    t = threading.Thread(target=engine.run_leader, daemon=True)
    t.start()
    try:
        yield engine
    finally:
        engine.stopping.set()
        t.join(10)


def submit(engine: Engine, ids: list[int], **params: object) -> Request:
    params.setdefault("ignore_eos", True)
    req = Request(ids=ids, params=SamplingParams(**params))  # type: ignore[arg-type]
    engine.submit(req)
    return req


def drain(req: Request, timeout: float = 60) -> tuple[list[Event], Event]:
    events: list[Event] = []
    while True:
        ev = req.events.get(timeout=timeout)
        if isinstance(ev, Finished | Failed):
            return events, ev
        events.append(ev)


def tokens(req: Request) -> tuple[list[int], Event]:
    events, end = drain(req)
    return [e.id for e in events if isinstance(e, Token)], end


def metric(engine: Engine, name: str) -> float:
    return sum(v for n, _, v in engine.metrics.samples() if n == name)


def test_concurrent_mixed_requests_equal_each_alone_even_when_preempted(shards_a: dict[int, Path]) -> None:
    """16 requests at once through a cache too small for all of them (blocks of 4, 256 tokens): the
    scheduler preempts and recomputes, and every request still gets exactly its greedy tokens alone."""
    lengths = [4 + (i * 7) % 29 for i in range(16)]
    with running(shards_a[1], kv_cache_tokens=4096) as engine:
        alone = [tokens(submit(engine, p, max_tokens=n))[0] for p, n in zip(PROMPTS, lengths, strict=True)]
    with running(shards_a[1], kv_cache_tokens=256, block_size=4, prefill_chunk=32) as engine:
        reqs = [submit(engine, p, max_tokens=n) for p, n in zip(PROMPTS, lengths, strict=True)]
        together = [tokens(r) for r in reqs]
        assert metric(engine, "bloom_worker_preemptions_total") > 0, "the cache should have run out"
        assert metric(engine, "bloom_worker_kv_blocks_used") == 0
    for (got, end), want, n in zip(together, alone, lengths, strict=True):
        assert end == Finished("length")
        assert len(got) == n
        assert got == want


def test_a_short_request_after_a_long_one_finishes_first(shards_a: dict[int, Path]) -> None:
    with running(shards_a[1], prefill_chunk=64) as engine:
        long = submit(engine, list(range(5, 205)), max_tokens=300)
        first = long.events.get(timeout=60)
        assert isinstance(first, Token)
        short = submit(engine, [7, 8, 9], max_tokens=4)
        got, end = tokens(short)
        assert end == Finished("length") and len(got) == 4
        assert long.events.qsize() < 290, "the short request waited for the long one"
        assert metric(engine, "bloom_worker_running_requests") >= 1
        long.cancel()
        assert drain(long)[1] == Finished("cancelled")


def test_cancel_frees_the_slot_within_one_step(shards_a: dict[int, Path]) -> None:
    with running(shards_a[1]) as engine:
        req = submit(engine, [5, 6, 7], max_tokens=1000)
        assert isinstance(req.events.get(timeout=60), Token)
        assert metric(engine, "bloom_worker_kv_blocks_used") > 0
        steps = metric(engine, "bloom_worker_engine_steps_total")
        req.cancel()
        _, end = drain(req)
        assert end == Finished("cancelled")
        assert metric(engine, "bloom_worker_engine_steps_total") - steps <= 2
        assert metric(engine, "bloom_worker_kv_blocks_used") == 0
        assert metric(engine, "bloom_worker_running_requests") == 0


def test_a_failed_pass_fails_its_requests_only(shards_a: dict[int, Path]) -> None:
    """Every rank raises out of memory in a pass of 13 tokens: that request answers 503, the one decoding
    beside it (another pass) and the next one are served."""
    with running(shards_a[1], fail_pass_with_tokens=13) as engine:
        beside = submit(engine, [5, 6], max_tokens=40)
        assert isinstance(beside.events.get(timeout=60), Token)
        doomed = submit(engine, list(range(20, 33)), max_tokens=4)
        _, end = drain(doomed)
        assert isinstance(end, Failed) and end.status == 503 and "out of memory" in end.message
        assert tokens(beside)[1] == Finished("length")
        got, end = tokens(submit(engine, [9, 9, 9], max_tokens=3))
        assert end == Finished("length") and len(got) == 3


def test_the_waiting_queue_is_bounded(shards_a: dict[int, Path]) -> None:
    engine = Engine(local_model(shards_a[1]), Metrics(), EngineConfig(scheduler=SchedulerConfig(max_waiting=2)))
    submit(engine, [5], max_tokens=1)
    submit(engine, [6], max_tokens=1)
    with pytest.raises(QueueFull):
        submit(engine, [7], max_tokens=1)


def test_deadline_and_eos(shards_a: dict[int, Path]) -> None:
    with running(shards_a[1]) as engine:
        late = Request(ids=[5, 6], params=SamplingParams(max_tokens=500, ignore_eos=True), deadline=time.monotonic())
        engine.submit(late)
        assert drain(late)[1] == Finished("timeout")
        sampled = dict(max_tokens=8, temperature=1.0, seed=7)
        free, _ = tokens(submit(engine, [5, 6, 7], **sampled))  # type: ignore[arg-type]
        cut = next(i for i, t in enumerate(free) if t not in free[:i] and i > 0)
        eos = engine.scheduler.eos
        engine.scheduler.eos = free[cut]  # plays end-of-sequence
        got, end = tokens(submit(engine, [5, 6, 7], **sampled, ignore_eos=False))  # type: ignore[arg-type]
        engine.scheduler.eos = eos
        assert end == Finished("stop") and got == free[:cut]


def test_seeded_sampling_is_reproducible_and_logprobs_are_the_models(shards_a: dict[int, Path]) -> None:
    with running(shards_a[1]) as engine:
        params = dict(max_tokens=12, temperature=1.5, top_p=0.95, top_k=50, seed=1234, logprobs=3)
        a, b, c = (drain(submit(engine, [5, 6, 7], **params)) for _ in range(3))  # type: ignore[arg-type]
        other = tokens(submit(engine, [5, 6, 7], **{**params, "seed": 99}))[0]  # type: ignore[arg-type]
        echo_events, _ = drain(submit(engine, [5, 6, 7, 8, 9], max_tokens=0, prompt_logprobs=2, debug_logits=True))
    ids = [[e.id for e in ev if isinstance(e, Token)] for ev, _ in (a, b, c)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 12
    assert other != ids[0]
    first = next(e for e in a[0] if isinstance(e, Token))
    assert first.logprob is not None and len(first.logprob.top) == 3
    assert first.logprob.top[0][1] >= first.logprob.top[1][1] >= first.logprob.top[2][1]
    prompt = next(e for e in echo_events if isinstance(e, PromptLogprobs))
    assert prompt.entries[0] is None and prompt.logits is not None
    logp = torch.log_softmax(prompt.logits, dim=-1)
    for pos, entry in enumerate(prompt.entries[1:]):
        assert entry is not None and entry.token == [6, 7, 8, 9][pos]
        assert abs(entry.logprob - float(logp[pos, entry.token])) < 1e-5
        assert entry.top[0][0] == int(logp[pos].argmax())


def test_penalties_shape_the_choice(shards_a: dict[int, Path]) -> None:
    with running(shards_a[1]) as engine:
        plain, _ = tokens(submit(engine, [5, 6, 7], max_tokens=20))
        assert len(set(plain)) < 20, "the tiny model repeats itself without a penalty"
        penalized, _ = tokens(submit(engine, [5, 6, 7], max_tokens=20, frequency_penalty=100.0))
        assert len(set(penalized)) == 20, penalized
        repeated, _ = tokens(submit(engine, [5, 6, 7], max_tokens=20, repetition_penalty=1000.0))
        assert len(set(repeated)) > len(set(plain)), repeated


def test_the_memory_probe_passes_run(shards_a: dict[int, Path]) -> None:
    """What a GPU rank runs to size its KV cache (engine._blocks_from_memory), here on the CPU: the
    largest prefill chunk and every running row decoding at the end of the longest context."""
    model = local_model(shards_a[1])
    cfg = EngineConfig(scheduler=SchedulerConfig(max_running=8, prefill_chunk=64), max_context=256, block_size=16)
    probe = model.new_cache(256 // 16, 16)
    for p in probe_passes(cfg):
        top, full = model.head(model.forward(p, probe), p)
        assert top is None and full is not None and full.shape[0] == p.shape[0]
        assert torch.isfinite(full).all()
