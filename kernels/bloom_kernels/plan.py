"""Which kernel and which tiles serve a given matmul: pure Python, no Triton import, unit-testable on CPU.

The tiles were chosen by reasoning about the BLOOM-176B shapes per rank (see kernels/BENCHMARKS.md and
kernels/DESIGN.md); they are static, not autotuned at run time, so one input always gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch

Kernel = Literal["reference", "gemv", "tile", "cublas"]

# From this M on, dequantize-then-cuBLAS is expected to beat the Triton tile kernel: W8A16 is compute-bound
# above M ~ 130 on H100 and mixed-input tile kernels reach ~0.6x of cuBLAS there, while the dequantization
# costs one int8 read plus one bf16 write of the weight (~0.1 ms for 14336x7168), amortised over M.
# kernels/bench.py prints both paths for every M so that this crossover can be set from measurement.
CUBLAS_MIN_M = 1024
TRITON_DTYPES = (torch.float16, torch.bfloat16)
MAX_SPLIT_K = 16


@dataclass(frozen=True)
class Plan:
    kernel: Kernel
    block_m: int = 1
    block_n: int = 0
    block_k: int = 0
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    group_n: int = 8
    chunk_n: int = 0  # cublas: output channels dequantized per cuBLAS call (0 = all at once)


def _k_granule(group_size: int) -> int:
    """Largest power of two dividing the group size: BLOCK_K must divide it (0 = per-channel scales)."""
    return group_size & -group_size if group_size else 1 << 30


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def _split(tiles: int, k: int, block_k: int, target_programs: int, min_k_tiles: int) -> int:
    """Split K until the grid has about target_programs programs, keeping >= min_k_tiles K tiles per split."""
    k_tiles = -(-k // block_k)
    want = max(1, -(-target_programs // tiles))
    split = max(1, min(want, MAX_SPLIT_K, k_tiles // min_k_tiles))
    per_split = -(-k_tiles // split)
    return -(-k_tiles // per_split)  # no empty splits


def gemv_plan(n: int, k: int, group_size: int, num_sms: int) -> Plan:
    """M = 1. Rows per program shrink from 64 to 16 until the grid has ~4 programs per SM, then split K.

    BLOOM TP=8: qkv (N=5376) -> 16 rows x split 2 (672 programs); dense (N=14336) -> 16 rows, no split (896);
    h-to-4h (N=7168) -> 16 x 2 (896); 4h-to-h (N=14336) -> 16, no split (896).
    """
    granule = _k_granule(group_size)
    target = 4 * num_sms
    block_n = 64
    while block_n > 16 and -(-n // block_n) < target:
        block_n //= 2
    block_k = min(256, granule, max(16, _next_pow2(k)))
    split = _split(-(-n // block_n), k, block_k, target, min_k_tiles=8)
    return Plan("gemv", block_n=block_n, block_k=block_k, split_k=split, num_warps=4, num_stages=3)


def tile_plan(m: int, n: int, k: int, group_size: int, num_sms: int) -> Plan:
    """2 <= M < CUBLAS_MIN_M: swapped-operand tl.dot tiles (weight rows x tokens x K) by M bucket."""
    granule = _k_granule(group_size)
    if m <= 16:
        bm, bn, bk, warps, stages = 16, 64, 256, 4, 4
    elif m <= 32:
        bm, bn, bk, warps, stages = 32, 64, 128, 4, 4
    elif m <= 64:
        bm, bn, bk, warps, stages = 64, 128, 128, 4, 3
    elif m <= 128:
        bm, bn, bk, warps, stages = 64, 128, 64, 4, 4
    else:
        bm, bn, bk, warps, stages = 128, 128, 64, 8, 3
    bk = min(bk, granule, max(16, _next_pow2(k)))
    tiles = -(-n // bn) * -(-m // bm)
    split = _split(tiles, k, bk, 2 * num_sms, min_k_tiles=4)
    return Plan("tile", block_m=bm, block_n=bn, block_k=bk, split_k=split, num_warps=warps, num_stages=stages)


@lru_cache(maxsize=4096)  # called on every int8_matmul: keep the launch path cheap
def plan(m: int, n: int, k: int, *, dtype: torch.dtype, group_size: int, device: torch.device, num_sms: int) -> Plan:
    """The kernel for x [m, k] (dtype, on device) times w [n, k] with scales of group_size (0 = per-channel)."""
    if m == 0 or device.type != "cuda" or dtype not in TRITON_DTYPES or _k_granule(group_size) < 16:
        return Plan("reference")
    if m == 1:
        return gemv_plan(n, k, group_size, num_sms)
    if m >= CUBLAS_MIN_M:
        return Plan("cublas")
    return tile_plan(m, n, k, group_size, num_sms)
