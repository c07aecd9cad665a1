"""kernels/bench.py's report (table, targets, projection) from synthetic rows; the timing itself needs a GPU."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).parents[3] / "kernels" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bloom_kernels_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def rows(bench: ModuleType, ours_us: float) -> list[Any]:
    out = []
    for name, (k, n) in bench.shapes(8).items():
        for m in (1, 16, 2048):
            cublas = 2.0 * n * k / 3e12 * 1e6  # bf16 weight bytes at 3 TB/s
            out.append(
                bench.Row(8, name, k, n, m, "gemv", ours_us, 1.0, 1.0, 1.0, 1.0, cublas, bw_fraction=0.9, rel_err=1e-3)
            )
    return out


def test_table_and_targets(bench: ModuleType) -> None:
    fast = rows(bench, ours_us=1.0)
    table = bench.table(fast)
    assert table.count("\n") == 2 + len(fast) - 1
    assert all(line.count("|") == 14 for line in table.splitlines())
    assert "MISS" not in bench.targets(fast)
    slow = rows(bench, ours_us=1e6)
    assert "M=1: >= 1.8x cuBLAS bf16: MISS (tp=8 qkv m=1" in bench.targets(slow)
    assert "lm_head" not in bench.targets(slow)  # the targets cover the four layer matmuls


def test_projection_uses_the_m1_rows(bench: ModuleType) -> None:
    text = bench.projection(rows(bench, ours_us=10.0), extras_us=20.0, allreduce_us=[22.0, 8.0])
    # ours: 70 x (4 x 10 + 20) us + 140 x 22 us + 10 us = 4.2 + 3.08 + 0.01 ms
    assert "| ours int8, all-reduce 22 µs | 2.80 | 1.40 | 3.08 | 0.01 | 7.29 |" in text
    assert "89.1" in text and "44.0" in text
