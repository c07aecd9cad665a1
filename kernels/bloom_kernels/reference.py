"""PyTorch reference of the W8A16 matmul: the oracle for the Triton kernels and the CPU path."""

from __future__ import annotations

import torch


def dequantize(w_int8: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int8 [N, K] weights with per-channel scales [N] or group-wise scales [N, K // group] -> dtype [N, K]."""
    n, k = w_int8.shape
    if scale.dim() == 1:
        return (w_int8.to(torch.float32) * scale.to(torch.float32)[:, None]).to(dtype)
    groups = scale.shape[1]
    w = w_int8.to(torch.float32).view(n, groups, k // groups) * scale.to(torch.float32)[:, :, None]
    return w.view(n, k).to(dtype)


def int8_matmul_reference(
    x: torch.Tensor, w_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """y = x @ dequantize(w).T + bias, accumulated in fp32, returned in x's dtype."""
    w = dequantize(w_int8, scale, torch.float32)
    y = x.to(torch.float32) @ w.T
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y.to(x.dtype)
