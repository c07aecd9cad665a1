"""The decode projection's arithmetic (the inputs are measured on a GPU by kernels/bench.py)."""

from __future__ import annotations

import pytest
from bloom_kernels.projection import project, projection_table


def test_projection_adds_up_70_layers_and_140_allreduces() -> None:
    p = project([30.0, 10.0, 40.0, 40.0], extras_us=20.0, allreduce_us=25.0, lm_head_us=150.0)
    assert p.matmuls_ms == pytest.approx(70 * 120 / 1e3)
    assert p.extras_ms == pytest.approx(1.4)
    assert p.allreduce_ms == pytest.approx(140 * 25 / 1e3)
    assert p.total_ms == pytest.approx(8.4 + 1.4 + 3.5 + 0.15)


def test_table_sets_the_published_deepspeed_numbers_beside() -> None:
    table = projection_table([("ours", project([1.0] * 4, 0.0, 0.0, 0.0))])
    assert "| ours | 0.28 |" in table and "89.1" in table and "44.0" in table


def test_four_matmuls_required() -> None:
    with pytest.raises(ValueError):
        project([1.0] * 3, 0.0, 0.0, 0.0)
