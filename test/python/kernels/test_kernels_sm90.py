"""The kernels compiled ahead of time for Hopper (sm_90) on this CPU-only machine, with the ptxas, cuobjdump
and nvdisasm that ship in the Triton wheel: no spills, Hopper's wgmma (HGMMA) in the tile kernel, 16-byte
weight loads and no quarter-rate I2F in the GEMV. Timing needs a GPU (kernels/bench.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import triton
import triton.backends.nvidia
from bloom_kernels import Plan, triton_kernels
from bloom_kernels.plan import gemv_plan, tile_plan
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

BIN = Path(triton.backends.nvidia.__file__).parent / "bin"
H100_SMS = 132
# Integer arguments that are multiples of 16 on the BLOOM shapes (Triton specializes on that at run time).
ALIGNED = {"N", "K", "stride_wn", "stride_xm", "k_per_split", "MN"}
POINTERS = {"x_ptr": "*bf16", "w_ptr": "*i8", "s_ptr": "*fp16", "b_ptr": "*bf16", "out_ptr": "*bf16", "ws_ptr": "*fp32"}


def sm90(kernel: Any, constexprs: dict[str, Any], num_warps: int, num_stages: int, tmp: Path) -> tuple[str, str]:
    """(resource usage, SASS) of kernel compiled for sm_90."""
    names = kernel.arg_names
    sig = {n: "constexpr" if n in constexprs else POINTERS.get(n, "i32") for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if n in POINTERS or n in ALIGNED}
    compiled = triton.compile(
        ASTSource(kernel, sig, constexprs, attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": True},
    )
    cubin = tmp / "k.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    usage = subprocess.run(
        [BIN / "cuobjdump", "--dump-resource-usage", cubin], capture_output=True, text=True, check=True
    )
    sass = subprocess.run([BIN / "nvdisasm", "-c", cubin], capture_output=True, text=True, check=True)
    return usage.stdout, sass.stdout


def assert_no_spills(usage: str) -> None:
    regs = int(re.search(r"REG:(\d+)", usage).group(1))  # type: ignore[union-attr]
    assert "STACK:0 " in usage and "LOCAL:0 " in usage and regs <= 255, usage


@pytest.mark.parametrize("group", [0, 128])
def test_gemv_sm90(tmp_path: Path, group: int) -> None:
    p = gemv_plan(5376, 14336, group, H100_SMS)
    const = {
        "GROUP_K": group,
        "HAS_BIAS": True,
        "SPLIT_K": p.split_k,
        "BLOCK_N": p.block_n,
        "BLOCK_K": p.block_k,
        "EVEN_K": True,
    }
    usage, sass = sm90(triton_kernels._gemv_kernel, const, p.num_warps, p.num_stages, tmp_path)
    assert_no_spills(usage)
    assert "LDG.E.EF.128" in sass  # 16-byte weight loads, marked evict-first
    assert "I2F" not in sass  # int8 -> fp32 by the 0x4B000000 bit trick
    loop = sass[: sass.index("SHFL")]  # the K loop comes before the final row reduction
    assert "BAR.SYNC" not in loop  # x arrives in the weight tile's layout, no shared-memory round trip


@pytest.mark.parametrize("m,group", [(2, 0), (16, 0), (16, 128), (64, 0), (256, 0), (512, 128)])
def test_tile_sm90(tmp_path: Path, m: int, group: int) -> None:
    p: Plan = tile_plan(m, 7168, 14336, group, H100_SMS)
    const = {
        "GROUP_K": group, "HAS_BIAS": True, "SPLIT_K": p.split_k, "BLOCK_M": p.block_m, "BLOCK_N": p.block_n,
        "BLOCK_K": p.block_k, "GROUP_N": p.group_n, "EVEN_K": True,
    }  # fmt: skip
    usage, sass = sm90(triton_kernels._tile_kernel, const, p.num_warps, p.num_stages, tmp_path)
    assert_no_spills(usage)
    assert re.search(r"HGMMA\.64x\d+x16\.F32\.BF16 R\d+, R\d+, gdesc", sass)  # wgmma, weight operand from registers
    assert "LDGSTS" in sass  # cp.async software pipeline


def test_reduce_and_dequant_sm90(tmp_path: Path) -> None:
    usage, _ = sm90(
        triton_kernels._splitk_reduce_kernel, {"HAS_BIAS": True, "SPLIT_K": 4, "BLOCK": 1024}, 4, 1, tmp_path
    )  # fmt: skip
    assert_no_spills(usage)
    usage, sass = sm90(triton_kernels._dequant_kernel, {"GROUP_K": 0, "BLOCK_N": 32, "BLOCK_K": 128}, 4, 1, tmp_path)
    assert_no_spills(usage)
    assert "I2F" not in sass
