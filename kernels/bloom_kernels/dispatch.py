"""The one entry point the worker calls: Triton kernels on CUDA, the PyTorch reference elsewhere."""

from __future__ import annotations

from functools import cache

import torch

from .plan import Plan, plan
from .reference import int8_matmul_reference


@cache
def _num_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _group_size(w_int8: torch.Tensor, scale: torch.Tensor) -> int:
    n, k = w_int8.shape
    if scale.dim() == 1 and scale.shape[0] == n:
        return 0
    if scale.dim() == 2 and scale.shape[0] == n and scale.shape[1] > 0 and k % scale.shape[1] == 0:
        return k // scale.shape[1]
    raise ValueError(f"scale {tuple(scale.shape)} fits neither [N] nor [N, K // group] for weight {(n, k)}")


def plan_for(x: torch.Tensor, w_int8: torch.Tensor, scale: torch.Tensor) -> Plan:
    """The plan int8_matmul follows for these operands (x may have leading batch dims)."""
    n, k = w_int8.shape
    if x.shape[-1] != k:
        raise ValueError(f"x has K={x.shape[-1]}, weight {(n, k)}")
    m = x.numel() // k if k else 0
    cuda = x.device.type == "cuda"
    sms = _num_sms(x.device.index if x.device.index is not None else torch.cuda.current_device()) if cuda else 0
    return plan(m, n, k, dtype=x.dtype, group_size=_group_size(w_int8, scale), device=x.device, num_sms=sms)


def int8_matmul(
    x: torch.Tensor, w_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """y = x @ (w_int8 * scale).T + bias for x [..., K], w_int8 [N, K] int8, scale [N] or [N, K // group].

    Accumulates in fp32 and returns x's dtype. Deterministic: the same inputs give the same bits.
    """
    p = plan_for(x, w_int8, scale)
    n, k = w_int8.shape
    x2 = x.reshape(-1, k)
    if p.kernel == "reference":
        y = int8_matmul_reference(x2, w_int8, scale, bias)
    else:
        from . import launch  # imports Triton only where a Triton kernel runs

        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        y = launch.run(p, x2, w_int8.contiguous(), scale.contiguous(), bias)
    return y.reshape(*x.shape[:-1], n)
