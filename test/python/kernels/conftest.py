"""A Triton interpreter in a child process, shared by the kernel tests of one session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bloom_kernels.interpreter import Interpreter


@pytest.fixture(scope="session")
def interpreted() -> Iterator[Interpreter]:
    with Interpreter() as interpreter:
        yield interpreter
