"""The engine's tuning (torch-free, so env.py can build it): scheduler bounds, the KV cache, the context."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SchedulerConfig:
    max_running: int = 64
    max_waiting: int = 256
    prefill_chunk: int = 512  # prompt tokens per step (rows x padded width)
    prompt_logprobs_chunk: int = 64  # per row, when every position's logits travel to rank 0
    watermark: float = 0.01  # of the blocks, kept free at admission


@dataclass(frozen=True)
class EngineConfig:
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    block_size: int = 16
    kv_cache_tokens: int | None = None  # None: from free GPU memory (CPU: DEFAULT_CPU_CACHE_TOKENS)
    gpu_memory_utilization: float = 0.9
    max_context: int = 2048
    fail_pass_with_tokens: int | None = None  # fault injection (BLOOM_DEBUG_API only): every rank raises OOM


DEFAULT_CPU_CACHE_TOKENS = 32768
