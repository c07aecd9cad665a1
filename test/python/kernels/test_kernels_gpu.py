"""The compiled Triton kernels on the real BLOOM-176B shapes per rank, against the reference (CUDA only)."""

from __future__ import annotations

import pytest
import torch
from bloom_kernels import int8_matmul, int8_matmul_reference, plan_for
from bloom_kernels.plan import Plan

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

HIDDEN = 14336
# name -> (K, N) per rank at tensor-parallel size tp
SHAPES = {
    "qkv": lambda tp: (HIDDEN, 3 * HIDDEN // tp),
    "dense": lambda tp: (HIDDEN // tp, HIDDEN),
    "h_to_4h": lambda tp: (HIDDEN, 4 * HIDDEN // tp),
    "4h_to_h": lambda tp: (4 * HIDDEN // tp, HIDDEN),
}
TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3}


def operands(
    m: int, k: int, n: int, group: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(m, k, device="cuda", generator=g).to(dtype)
    w = torch.randint(-128, 128, (n, k), device="cuda", generator=g, dtype=torch.int8)
    shape = (n, k // group) if group else (n,)
    scale = (torch.rand(shape, device="cuda", generator=g) * 2e-3 + 1e-4).to(torch.float16)
    bias = torch.randn(n, device="cuda", generator=g).to(dtype)
    return x, w, scale, bias


def poisoned(m: int, n: int, dtype: torch.dtype) -> None:
    """Leave NaN in the allocator's free block that the next [m, n] output is likely to reuse."""
    torch.full((m, n), float("nan"), dtype=dtype, device="cuda")


def check(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> None:
    assert not torch.backends.cuda.matmul.allow_tf32  # the oracle runs in full fp32
    ref = int8_matmul_reference(x.float(), w, scale, bias.float())
    assert torch.isfinite(y).all()
    err = ((y.float() - ref).norm() / ref.norm()).item()
    assert err < TOL[x.dtype], err


@pytest.mark.parametrize("m", [1, 2, 8, 16, 64, 256, 2048])
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("tp", [8, 1])
def test_bloom_shapes_per_channel(tp: int, name: str, m: int) -> None:
    k, n = SHAPES[name](tp)
    x, w, scale, bias = operands(m, k, n, 0, torch.bfloat16, seed=m * 7 + tp)
    poisoned(m, n, x.dtype)
    check(int8_matmul(x, w, scale, bias), x, w, scale, bias)


@pytest.mark.parametrize("m", [1, 16, 256])
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_bloom_shapes_group_wise(dtype: torch.dtype, name: str, m: int) -> None:
    k, n = SHAPES[name](8)
    x, w, scale, bias = operands(m, k, n, 128, dtype, seed=m + 3)
    check(int8_matmul(x, w, scale, bias), x, w, scale, bias)


@pytest.mark.parametrize("m", [1, 3, 16, 100])
def test_deterministic(m: int) -> None:
    k, n = SHAPES["qkv"](8)
    x, w, scale, bias = operands(m, k, n, 0, torch.bfloat16, seed=m)
    assert plan_for(x, w, scale).split_k > 1
    assert torch.equal(int8_matmul(x, w, scale, bias), int8_matmul(x, w, scale, bias))


@pytest.mark.parametrize("m", [1024, 4096])
def test_large_m_both_paths(m: int) -> None:
    """Large M dispatches to dequantize-then-cuBLAS; the tile kernel must be right there too."""
    from bloom_kernels import launch
    from bloom_kernels.plan import tile_plan

    k, n = SHAPES["h_to_4h"](8)
    x, w, scale, bias = operands(m, k, n, 0, torch.bfloat16, seed=m)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    p: Plan = tile_plan(m, n, k, 0, sms)
    check(launch.tile(p, x, w, scale, bias), x, w, scale, bias)
    check(launch.dequant_matmul(x, w, scale, bias), x, w, scale, bias)
    check(launch.dequant_matmul(x, w, scale, bias, chunk_n=1000), x, w, scale, bias)  # ragged last chunk


def test_batch_dims_and_strided_x() -> None:
    k, n = SHAPES["dense"](8)
    x, w, scale, bias = operands(24, 2 * k, n, 0, torch.bfloat16, seed=5)
    xs = x[:, :k]
    y = int8_matmul(xs.reshape(4, 6, k), w, scale, bias)
    assert y.shape == (4, 6, n)
    check(y.reshape(24, n), xs, w, scale, bias)
