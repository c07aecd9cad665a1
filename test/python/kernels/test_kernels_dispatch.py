"""The dispatcher: which kernel serves which call, and the reference path the CPU worker runs."""

from __future__ import annotations

import pytest
import torch
from bloom_kernels import int8_matmul, int8_matmul_reference, plan_for
from bloom_kernels.plan import CUBLAS_MIN_M, plan

CUDA = torch.device("cuda")
H100_SMS = 132
# (K, N) per rank of the four BLOOM-176B matmuls (hidden 14336) at tensor-parallel size tp.
BLOOM = {
    tp: [(14336, 3 * 14336 // tp), (14336 // tp, 14336), (14336, 4 * 14336 // tp), (4 * 14336 // tp, 14336)]
    for tp in (1, 2, 4, 8)
}


def test_cpu_runs_the_reference_with_batch_dims() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, generator=g)
    w = torch.randint(-128, 128, (24, 64), generator=g, dtype=torch.int8)
    scale, bias = torch.rand(24, generator=g), torch.randn(24, generator=g)
    assert plan_for(x, w, scale).kernel == "reference"
    y = int8_matmul(x, w, scale, bias)
    assert y.shape == (2, 3, 24) and y.dtype == torch.float32
    assert torch.equal(y, int8_matmul_reference(x.reshape(6, 64), w, scale, bias).reshape(2, 3, 24))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_half_precision_and_group_scales(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 128, generator=g).to(dtype)
    w = torch.randint(-128, 128, (16, 128), generator=g, dtype=torch.int8)
    scale = torch.rand(16, 4, generator=g).to(torch.float16)
    y = int8_matmul(x, w, scale)
    assert y.dtype == dtype and torch.equal(y, int8_matmul_reference(x, w, scale))


def test_bad_scale_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="scale"):
        int8_matmul(torch.randn(1, 64), torch.zeros(8, 64, dtype=torch.int8), torch.ones(8, 3))


@pytest.mark.parametrize(
    "m,dtype,group,kernel",
    [
        (1, torch.bfloat16, 0, "gemv"),
        (1, torch.float16, 128, "gemv"),
        (2, torch.bfloat16, 0, "tile"),
        (16, torch.bfloat16, 0, "tile"),
        (512, torch.bfloat16, 0, "tile"),
        (CUBLAS_MIN_M, torch.bfloat16, 0, "cublas"),
        (4096, torch.float16, 64, "cublas"),
        (1, torch.float32, 0, "reference"),
        (16, torch.bfloat16, 24, "reference"),
        (0, torch.bfloat16, 0, "reference"),
    ],
)
def test_choice_on_cuda(m: int, dtype: torch.dtype, group: int, kernel: str) -> None:
    assert plan(m, 5376, 14336, dtype=dtype, group_size=group, device=CUDA, num_sms=H100_SMS).kernel == kernel


@pytest.mark.parametrize("m", [1, 4, 16, 64, 256])
@pytest.mark.parametrize("group", [0, 128])
@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_bloom_plans_fill_the_gpu(tp: int, group: int, m: int) -> None:
    for k, n in BLOOM[tp]:
        p = plan(m, n, k, dtype=torch.bfloat16, group_size=group, device=CUDA, num_sms=H100_SMS)
        assert p.kernel == ("gemv" if m == 1 else "tile")
        assert (group or k) % p.block_k == 0
        programs = -(-n // p.block_n) * -(-m // p.block_m) * p.split_k
        assert programs >= H100_SMS, (k, n, p)
        k_tiles = -(-k // p.block_k)
        assert (p.split_k - 1) * -(-k_tiles // p.split_k) < k_tiles  # no split is empty


def test_bloom_tp8_gemv_tiles() -> None:
    """The M = 1 plans at TP=8 that kernels/DESIGN.md reasons about."""
    got = [plan(1, n, k, dtype=torch.bfloat16, group_size=0, device=CUDA, num_sms=H100_SMS) for k, n in BLOOM[8]]
    assert [(p.block_n, p.block_k, p.split_k) for p in got] == [(16, 256, 2), (16, 256, 1), (16, 256, 2), (16, 256, 1)]
