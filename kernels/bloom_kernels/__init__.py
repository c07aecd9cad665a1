"""INT8 weight-only matmul kernels for BLOOM: Triton on CUDA, a PyTorch reference elsewhere."""

from .dispatch import int8_matmul, plan_for
from .plan import Plan
from .reference import dequantize, int8_matmul_reference

__all__ = ["Plan", "dequantize", "int8_matmul", "int8_matmul_reference", "plan_for"]
