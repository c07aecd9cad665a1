"""BLOOM-176B decode time at batch 1 on a tensor-parallel group, projected from measured per-rank times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LAYERS = 70
ALLREDUCES_PER_LAYER = 2  # after the row-parallel `dense` and `dense_4h_to_h`
# Published BLOOM-176B batch-1 decode on 8x A100 80GB (huggingface.co/blog/bloom-inference-pytorch-scripts).
DEEPSPEED_A100_MS = {
    "DeepSpeed-Inference int8, 8x A100 (published)": 89.1,
    "DeepSpeed-Inference fp16, 8x A100 (published)": 44.0,
}


@dataclass(frozen=True)
class DecodeProjection:
    """Milliseconds per generated token, by part."""

    matmuls_ms: float
    extras_ms: float
    allreduce_ms: float
    lm_head_ms: float

    @property
    def total_ms(self) -> float:
        return self.matmuls_ms + self.extras_ms + self.allreduce_ms + self.lm_head_ms


def project(
    layer_matmuls_us: Sequence[float], extras_us: float, allreduce_us: float, lm_head_us: float, layers: int = LAYERS
) -> DecodeProjection:
    """layer_matmuls_us: the four per-layer matmuls at M = 1 (qkv, dense, h-to-4h, 4h-to-h); extras_us: the
    rest of one layer (attention over the KV cache, layer norms, GELU, residual adds); allreduce_us: the
    latency of one all-reduce of one token's hidden state; lm_head_us: the vocab-parallel LM head."""
    if len(layer_matmuls_us) != 4:
        raise ValueError("a BLOOM layer has four matmuls")
    return DecodeProjection(
        matmuls_ms=layers * sum(layer_matmuls_us) / 1e3,
        extras_ms=layers * extras_us / 1e3,
        allreduce_ms=layers * ALLREDUCES_PER_LAYER * allreduce_us / 1e3,
        lm_head_ms=lm_head_us / 1e3,
    )


def projection_table(rows: Sequence[tuple[str, DecodeProjection]]) -> str:
    """Markdown table of projections, followed by DeepSpeed-Inference's published A100 numbers."""
    lines = [
        "| configuration | matmuls ms | attention+rest ms | all-reduce ms | LM head ms | total ms/token |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in rows:
        parts = (p.matmuls_ms, p.extras_ms, p.allreduce_ms, p.lm_head_ms, p.total_ms)
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in parts) + " |")
    for name, ms in DEEPSPEED_A100_MS.items():
        lines.append(f"| {name} | | | | | {ms:.1f} |")
    return "\n".join(lines)
