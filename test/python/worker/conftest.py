"""Fixtures of the worker suite: tiny random BLOOMs, their shards, and real bloom-worker process groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_helpers import DS_MODEL, MODEL_A, MODEL_B, Group, build_hf, convert, launch, write_deepspeed


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker")


@pytest.fixture(scope="session")
def model_a(work: Path) -> Path:
    return build_hf(work / "hf-a", 1, True, **MODEL_A)


@pytest.fixture(scope="session")
def model_b(work: Path) -> Path:
    return build_hf(work / "hf-b", 2, False, **MODEL_B)


@pytest.fixture(scope="session")
def shards_a(work: Path, model_a: Path) -> dict[int, Path]:
    return {tp: convert(model_a, work / f"a-tp{tp}", tp) for tp in (1, 2, 4, 8)}


@pytest.fixture(scope="session")
def shards_b(work: Path, model_b: Path) -> dict[int, Path]:
    return {tp: convert(model_b, work / f"b-tp{tp}", tp) for tp in (1, 3)}


@pytest.fixture(scope="session")
def ds(work: Path) -> dict[str, Path]:
    """A synthetic DeepSpeed-Inference INT8 checkpoint (tp_size 4, 32 groups, half-scales), the original
    converted for TP=4, and the checkpoint imported for TP=4 and re-split for TP=8."""
    src = build_hf(work / "hf-ds", 3, False, **DS_MODEL)
    ckpt = write_deepspeed(src, work / "ds-int8")
    return {
        "src": src,
        "ckpt": ckpt,
        "conv": convert(src, work / "ds-conv-tp4", 4),
        "tp4": convert(ckpt, work / "ds-imp-tp4", 4),
        "tp8": convert(ckpt, work / "ds-imp-tp8", 8),
    }


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """launch(...) that always cleans its processes up."""
    groups: list[Group] = []

    def _spawn(model_dir: Path, world: int, **kw: object) -> Group:
        g = launch(model_dir, world, tmp_path / f"g{len(groups)}", **kw)  # type: ignore[arg-type]
        groups.append(g)
        return g

    yield _spawn
    for g in groups:
        g.stop()
