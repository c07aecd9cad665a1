"""Fixtures of the worker suite: tiny random BLOOMs, their shards, and real bloom-worker process groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_helpers import MODEL_A, MODEL_B, Group, build_hf, convert, launch


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
