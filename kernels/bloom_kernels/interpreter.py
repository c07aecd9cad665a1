"""Run the Triton kernels on CPU tensors under the Triton interpreter, in a child process.

`@triton.jit` decides when a kernel module is imported whether it builds an interpreted function, and
Triton's own library reads TRITON_INTERPRET at later moments too, so the interpreter gets a process of its
own: the calling process (a test session, the worker) keeps its Triton untouched.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Self

import torch

from .plan import Plan


def _patch_bf16_dot() -> None:
    """The interpreter stores bf16 as uint16 and its tl.dot multiplies those integers (Triton 3.9); upcast to
    fp32 first, which is exact for bf16 products and is what tensor cores compute into an fp32 accumulator."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpreterBuilder

    create_dot = InterpreterBuilder.create_dot

    def dot(self: InterpreterBuilder, a: Any, b: Any, d: Any, *args: Any) -> Any:
        if a.dtype.scalar == tl.bfloat16:
            a, b = self.cast_impl(a, tl.float32), self.cast_impl(b, tl.float32)
        return create_dot(self, a, b, d, *args)

    InterpreterBuilder.create_dot = dot  # type: ignore[method-assign]


def _init() -> None:
    os.environ["TRITON_INTERPRET"] = "1"
    _patch_bf16_dot()


def _call(name: str, *args: Any) -> Any:
    from . import launch

    return getattr(launch, name)(*args)


def _is_interpreted() -> bool:
    from triton.runtime.interpreter import InterpretedFunction

    from . import triton_kernels

    return all(
        isinstance(getattr(triton_kernels, f), InterpretedFunction)
        for f in ("_gemv_kernel", "_tile_kernel", "_splitk_reduce_kernel", "_dequant_kernel")
    )


class Interpreter:
    """`with Interpreter() as k: k.run(plan, x, w, scale, bias)` runs bloom_kernels.launch interpreted."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self, p: Plan, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        return self._pool.submit(_call, "run", p, x, w, scale, bias).result()

    def dequantize(self, w: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self._pool.submit(_call, "dequantize", w, scale, dtype).result()

    def is_interpreted(self) -> bool:
        return self._pool.submit(_is_interpreted).result()
