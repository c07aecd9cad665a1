"""Triton W8A16 kernels: int8 weights [N, K] (K contiguous) are converted in registers, never stored as bf16.

Import this module only where Triton should run: on CUDA, or on CPU tensors with TRITON_INTERPRET=1 set
before the import (the `@triton.jit` decorator decides then whether it builds an interpreted function).

Scales: GROUP_K == 0 means per-output-channel scales [N], applied once to the fp32 result. GROUP_K > 0
means group-wise scales [N, K // GROUP_K]; the plan picks BLOCK_K dividing GROUP_K, so every K tile
lies inside one group and takes one scale per row.
"""

import triton
import triton.language as tl


@triton.jit
def _i8_to_f32(w):
    """Exact int8 -> fp32 without the quarter-rate I2F unit: bitcast(0x4B000000 | (w + 128)) - (2**23 + 128)."""
    bits = w.to(tl.int32) + 0x4B000080
    return bits.to(tl.float32, bitcast=True) - 8388736.0


@triton.jit
def _gemv_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, out_ptr, ws_ptr,
    N, K, stride_wn, stride_sn, k_per_split,
    GROUP_K: tl.constexpr, HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
):  # fmt: skip
    """M = 1: y[n] = sum_k x[k] * w[n, k] * s, with CUDA-core FMAs into a [BLOCK_N, BLOCK_K] accumulator.

    x is loaded as a [BLOCK_N, BLOCK_K] broadcast (rows hit L1) so that it comes in the weight tile's own
    layout: a [BLOCK_K] load would be converted through shared memory with barriers in every iteration.

    Grid (cdiv(N, BLOCK_N), SPLIT_K). With SPLIT_K > 1 each program writes its fp32 partial to
    ws[pid_k, n] and `_splitk_reduce_kernel` sums them in a fixed order (deterministic, no atomics).
    """
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = rn < N
    rk = tl.arange(0, BLOCK_K)
    k_start = pid_k * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k0 in range(k_start, k_end, BLOCK_K):
        k = k0 + rk
        w_ptrs = w_ptr + rn[:, None] * stride_wn + k[None, :]
        if EVEN_K:
            w = tl.load(w_ptrs, mask=n_mask[:, None], other=0, eviction_policy="evict_first")
            x = tl.load(x_ptr + k[None, :] + 0 * rn[:, None], eviction_policy="evict_last")
        else:
            k_mask = k < K
            w = tl.load(w_ptrs, mask=n_mask[:, None] & k_mask[None, :], other=0, eviction_policy="evict_first")
            x = tl.load(
                x_ptr + k[None, :] + 0 * rn[:, None], mask=k_mask[None, :], other=0.0, eviction_policy="evict_last"
            )
        wf = _i8_to_f32(w)
        if GROUP_K > 0:
            s = tl.load(s_ptr + rn * stride_sn + k0 // GROUP_K, mask=n_mask, other=0.0)
            wf = wf * s.to(tl.float32)[:, None]
        acc += wf * x.to(tl.float32)
    y = tl.sum(acc, axis=1)
    if GROUP_K == 0:
        y = y * tl.load(s_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)
    if SPLIT_K == 1:
        if HAS_BIAS:
            y += tl.load(b_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + rn, y.to(out_ptr.dtype.element_ty), mask=n_mask)
    else:
        tl.store(ws_ptr + pid_k * N + rn, y, mask=n_mask)


@triton.jit
def _tile_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, out_ptr, ws_ptr,
    M, N, K, stride_xm, stride_wn, stride_sn, k_per_split,
    GROUP_K: tl.constexpr, HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_N: tl.constexpr, EVEN_K: tl.constexpr,
):  # fmt: skip
    """out[M, N] via the swapped product out^T = W . x^T: the converted weight tile is the dot's A operand
    (Hopper can feed it to wgmma from registers) and the small M sits in the dot's N dimension (>= 16).

    Grid (cdiv(N, BLOCK_N) * cdiv(M, BLOCK_M), SPLIT_K), tiles ordered in groups of GROUP_N weight tiles
    for L2 reuse at large M. Split-K partials go to ws[pid_k, m, n] as in `_gemv_kernel`.
    """
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    per_group = GROUP_N * num_pid_m
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(num_pid_n - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_size
    pid_m = (pid % per_group) // group_size

    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = tl.arange(0, BLOCK_K)
    n_mask = rn < N
    m_mask = rm < M
    k_start = pid_k * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    for k0 in range(k_start, k_end, BLOCK_K):
        k = k0 + rk
        w_ptrs = w_ptr + rn[:, None] * stride_wn + k[None, :]
        x_ptrs = x_ptr + rm[None, :] * stride_xm + k[:, None]
        if EVEN_K:
            w = tl.load(w_ptrs, mask=n_mask[:, None], other=0)
            xt = tl.load(x_ptrs, mask=m_mask[None, :], other=0.0)
        else:
            k_mask = k < K
            w = tl.load(w_ptrs, mask=n_mask[:, None] & k_mask[None, :], other=0)
            xt = tl.load(x_ptrs, mask=m_mask[None, :] & k_mask[:, None], other=0.0)
        wt = _i8_to_f32(w).to(xt.dtype)
        if GROUP_K > 0:
            s = tl.load(s_ptr + rn * stride_sn + k0 // GROUP_K, mask=n_mask, other=0.0)
            acc += tl.dot(wt, xt) * s.to(tl.float32)[:, None]
        else:
            acc = tl.dot(wt, xt, acc)
    if GROUP_K == 0:
        acc = acc * tl.load(s_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)[:, None]
    offs = rm[None, :] * N + rn[:, None]
    mask = n_mask[:, None] & m_mask[None, :]
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(b_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)[:, None]
        tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ws_ptr + pid_k * M * N + offs, acc, mask=mask)


@triton.jit
def _splitk_reduce_kernel(
    ws_ptr, b_ptr, out_ptr, MN, N,
    HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """out = sum over splits 0..SPLIT_K-1 of ws[s] (in that order) + bias, cast to out's dtype."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MN
    acc = tl.load(ws_ptr + offs, mask=mask, other=0.0)
    for s in tl.static_range(1, SPLIT_K):
        acc += tl.load(ws_ptr + s * MN + offs, mask=mask, other=0.0)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs % N, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dequant_kernel(
    w_ptr, s_ptr, out_ptr, N, K, stride_wn, stride_sn,
    GROUP_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """out[N, K] = w * scale in out's dtype, one pass (the first half of dequantize-then-cuBLAS)."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    n_mask = rn < N
    mask = n_mask[:, None] & (rk < K)[None, :]
    w = _i8_to_f32(tl.load(w_ptr + rn[:, None] * stride_wn + rk[None, :], mask=mask, other=0))
    if GROUP_K > 0:
        s = tl.load(s_ptr + rn[:, None] * stride_sn + (rk // GROUP_K)[None, :], mask=mask, other=0.0)
        w = w * s.to(tl.float32)
    else:
        w = w * tl.load(s_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)[:, None]
    tl.store(out_ptr + rn[:, None] * K + rk[None, :], w.to(out_ptr.dtype.element_ty), mask=mask)
