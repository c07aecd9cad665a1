"""The Triton kernels, run by the Triton interpreter on CPU tensors, against the PyTorch reference."""

from __future__ import annotations

import pytest
import torch
from bloom_kernels import Plan, int8_matmul_reference
from bloom_kernels.interpreter import Interpreter
from bloom_kernels.plan import plan

CUDA = torch.device("cuda")
TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3}


def operands(
    m: int, n: int, k: int, group: int, dtype: torch.dtype, bias: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g).to(dtype)
    w = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
    shape = (n, k // group) if group else (n,)
    scale = (torch.rand(shape, generator=g) * 0.02 + 0.001).to(torch.float16)
    b = torch.randn(n, generator=g).to(dtype) if bias else None
    return x, w, scale, b


def check(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, b: torch.Tensor | None) -> None:
    ref = int8_matmul_reference(x.float(), w, scale, None if b is None else b.float())
    assert y.shape == ref.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    err = ((y.float() - ref).norm() / ref.norm()).item()
    assert err < TOL[x.dtype], err
    worst = ((y.float() - ref).abs().max() / ref.abs().max()).item()
    assert worst < 4 * TOL[x.dtype], worst


def test_int8_conversion_is_exact(interpreted: Interpreter) -> None:
    w = torch.arange(-128, 128, dtype=torch.int8).reshape(2, 128)
    y = interpreted.dequantize(w, torch.ones(2), torch.float32)
    assert torch.equal(y, w.float())


def test_kernels_are_interpreted(interpreted: Interpreter) -> None:
    assert interpreted.is_interpreted()


# (m, n, k, group): ragged N and K (not multiples of the tiles), per-channel and group-wise scales.
GEMV_CASES = [(1, 37, 200, 0), (1, 64, 512, 0), (1, 70, 384, 64), (1, 19, 96, 32)]
TILE_CASES = [(2, 37, 200, 0), (5, 70, 384, 64), (16, 64, 256, 0), (33, 45, 300, 0), (40, 96, 256, 32)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("split_k", [1, 3])
@pytest.mark.parametrize("m,n,k,group", GEMV_CASES)
def test_gemv(interpreted: Interpreter, m: int, n: int, k: int, group: int, split_k: int, dtype: torch.dtype) -> None:
    x, w, scale, b = operands(m, n, k, group, dtype, bias=split_k == 1, seed=n + k)
    p = Plan("gemv", block_n=16, block_k=min(64, group or 64), split_k=split_k)
    check(interpreted.run(p, x, w, scale, b), x, w, scale, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("split_k", [1, 2])
@pytest.mark.parametrize("m,n,k,group", TILE_CASES)
def test_tile(interpreted: Interpreter, m: int, n: int, k: int, group: int, split_k: int, dtype: torch.dtype) -> None:
    x, w, scale, b = operands(m, n, k, group, dtype, bias=split_k == 2, seed=m + n + k)
    p = Plan("tile", block_m=16, block_n=32, block_k=min(64, group or 64), split_k=split_k, group_n=2)
    check(interpreted.run(p, x, w, scale, b), x, w, scale, b)


def test_tile_strided_x(interpreted: Interpreter) -> None:
    x, w, scale, b = operands(20, 48, 160, 0, torch.bfloat16, bias=True, seed=7)
    wide = torch.zeros(20, 200, dtype=torch.bfloat16)
    wide[:, :160] = x
    p = Plan("tile", block_m=16, block_n=32, block_k=32, split_k=2)
    check(interpreted.run(p, wide[:, :160], w, scale, b), x, w, scale, b)


@pytest.mark.parametrize("m", [1, 3, 16, 64])
def test_split_k_is_deterministic(interpreted: Interpreter, m: int) -> None:
    x, w, scale, b = operands(m, 48, 4096, 0, torch.bfloat16, bias=True, seed=m)
    p = plan(m, 48, 4096, dtype=x.dtype, group_size=0, device=CUDA, num_sms=8)
    assert p.split_k > 1
    first = interpreted.run(p, x, w, scale, b)
    assert torch.equal(first, interpreted.run(p, x, w, scale, b))
    check(first, x, w, scale, b)


@pytest.mark.parametrize("m,group", [(1, 0), (1, 128), (4, 0), (16, 64), (100, 0), (200, 128), (1024, 0)])
def test_planned_configs(interpreted: Interpreter, m: int, group: int) -> None:
    """The plans the dispatcher makes on a GPU, run on a small ragged shape."""
    n, k = 72, 640
    x, w, scale, b = operands(m, n, k, group, torch.float16, bias=True, seed=m + group)
    p = plan(m, n, k, dtype=x.dtype, group_size=group, device=CUDA, num_sms=4)
    assert p.kernel == ("gemv" if m == 1 else "cublas" if m >= 1024 else "tile")
    check(interpreted.run(p, x, w, scale, b), x, w, scale, b)


@pytest.mark.parametrize("chunk_n", [0, 32])
@pytest.mark.parametrize("group", [0, 64])
def test_dequant_then_matmul(interpreted: Interpreter, group: int, chunk_n: int) -> None:
    """The large-M path, whole or in chunks of output channels (ragged last chunk)."""
    x, w, scale, b = operands(40, 72, 256, group, torch.float16, bias=chunk_n > 0, seed=group + chunk_n)
    check(interpreted.run(Plan("cublas", chunk_n=chunk_n), x, w, scale, b), x, w, scale, b)
