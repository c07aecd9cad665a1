"""INT8 weight-only matmul kernels for BLOOM: Triton on CUDA, a PyTorch reference elsewhere."""

from .reference import dequantize, int8_matmul_reference

int8_matmul = int8_matmul_reference

__all__ = ["dequantize", "int8_matmul", "int8_matmul_reference"]
