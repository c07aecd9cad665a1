"""Launchers of the Triton kernels for one Plan. Importing this imports Triton (see triton_kernels.py)."""

from __future__ import annotations

import torch
import triton

from .plan import Plan
from .triton_kernels import _dequant_kernel, _gemv_kernel, _splitk_reduce_kernel, _tile_kernel

REDUCE_BLOCK = 1024
DEQUANT_BLOCK_N = 32
DEQUANT_BLOCK_K = 128


def _group_k(w: torch.Tensor, scale: torch.Tensor) -> int:
    return 0 if scale.dim() == 1 else w.shape[1] // scale.shape[1]


def _reduce(ws: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> None:
    split, mn = ws.shape[0], out.numel()
    grid = (triton.cdiv(mn, REDUCE_BLOCK),)
    _splitk_reduce_kernel[grid](
        ws, bias if bias is not None else ws, out, mn, out.shape[-1],
        HAS_BIAS=bias is not None, SPLIT_K=split, BLOCK=REDUCE_BLOCK,
    )  # fmt: skip


def _workspace(p: Plan, m: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """fp32 split-K partials [split, m, n] (a dummy when split_k == 1: the kernel never touches it)."""
    shape = (p.split_k, m, n) if p.split_k > 1 else (1,)
    return torch.empty(shape, dtype=torch.float32, device=like.device)


def _k_per_split(p: Plan, k: int) -> int:
    return triton.cdiv(triton.cdiv(k, p.block_k), p.split_k) * p.block_k


def gemv(p: Plan, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [1, K] (K contiguous), w [N, K] (K contiguous) -> [1, N] in x's dtype."""
    n, k = w.shape
    out = torch.empty((1, n), dtype=x.dtype, device=x.device)
    ws = _workspace(p, 1, n, x)
    grid = (triton.cdiv(n, p.block_n), p.split_k)
    _gemv_kernel[grid](
        x, w, scale, bias if bias is not None else scale, out, ws,
        n, k, w.stride(0), scale.stride(0), _k_per_split(p, k),
        GROUP_K=_group_k(w, scale), HAS_BIAS=bias is not None, SPLIT_K=p.split_k,
        BLOCK_N=p.block_n, BLOCK_K=p.block_k, EVEN_K=k % p.block_k == 0,
        num_warps=p.num_warps, num_stages=p.num_stages, enable_fp_fusion=True,
    )  # fmt: skip
    if p.split_k > 1:
        _reduce(ws, bias, out)
    return out


def tile(p: Plan, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] (K contiguous), w [N, K] (K contiguous) -> [M, N] in x's dtype."""
    m = x.shape[0]
    n, k = w.shape
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    ws = _workspace(p, m, n, x)
    grid = (triton.cdiv(n, p.block_n) * triton.cdiv(m, p.block_m), p.split_k)
    _tile_kernel[grid](
        x, w, scale, bias if bias is not None else scale, out, ws,
        m, n, k, x.stride(0), w.stride(0), scale.stride(0), _k_per_split(p, k),
        GROUP_K=_group_k(w, scale), HAS_BIAS=bias is not None, SPLIT_K=p.split_k,
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, BLOCK_K=p.block_k, GROUP_N=p.group_n,
        EVEN_K=k % p.block_k == 0, num_warps=p.num_warps, num_stages=p.num_stages, enable_fp_fusion=True,
    )  # fmt: skip
    if p.split_k > 1:
        _reduce(ws, bias, out)
    return out


def dequantize(w: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int8 [N, K] * scale -> dtype [N, K] in one pass."""
    n, k = w.shape
    out = torch.empty((n, k), dtype=dtype, device=w.device)
    grid = (triton.cdiv(n, DEQUANT_BLOCK_N), triton.cdiv(k, DEQUANT_BLOCK_K))
    _dequant_kernel[grid](
        w, scale, out, n, k, w.stride(0), scale.stride(0),
        GROUP_K=_group_k(w, scale), BLOCK_N=DEQUANT_BLOCK_N, BLOCK_K=DEQUANT_BLOCK_K,
    )  # fmt: skip
    return out


def dequant_matmul(
    x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, chunk_n: int = 0
) -> torch.Tensor:
    """Large M: dequantize into a scratch bf16/fp16 weight, then cuBLAS (bias fused by addmm).

    chunk_n > 0 does it chunk_n output channels at a time, into column slices of the output, so that each
    scratch chunk can stay in L2 between its write and cuBLAS's read instead of a round trip through HBM.
    """
    n = w.shape[0]
    step = chunk_n or n
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    for n0 in range(0, n, step):
        cols = slice(n0, n0 + step)
        wd = dequantize(w[cols], scale[cols], x.dtype)
        if bias is None:
            torch.mm(x, wd.T, out=out[:, cols])
        else:
            torch.addmm(bias[cols].to(x.dtype), x, wd.T, out=out[:, cols])
    return out


def run(p: Plan, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Run the planned Triton kernel (x is 2-D; x and w have unit stride along K)."""
    if p.kernel == "gemv":
        return gemv(p, x, w, scale, bias)
    if p.kernel == "tile":
        return tile(p, x, w, scale, bias)
    if p.kernel == "cublas":
        return dequant_matmul(x, w, scale, bias, p.chunk_n)
    raise ValueError(f"not a Triton plan: {p.kernel}")
