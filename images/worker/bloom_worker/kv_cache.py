"""The paged KV cache: every layer's keys and values in one pool of fixed-size blocks, shared by all
running sequences (vLLM's layout, without its kernels).

A sequence owns a list of blocks (its block table); token position p of the sequence lives in slot
`table[p // block_size] * block_size + p % block_size`. The pool has one extra slot at the end, the
scratch slot, where the padding positions of a pass write (and where unused reads point): it is never
part of a sequence. Rank 0's BlockAllocator hands blocks out; every rank holds the same pool and writes
and reads exactly the slots rank 0's plan names, so the caches of all ranks stay identical in layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class KVCache:
    """Keys and values per layer: [num_blocks * block_size + 1 (scratch), local heads, head_dim]."""

    def __init__(
        self,
        n_layer: int,
        num_blocks: int,
        block_size: int,
        heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.scratch = num_blocks * block_size
        shape = (self.scratch + 1, heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]

    @staticmethod
    def bytes_per_block(n_layer: int, block_size: int, heads: int, head_dim: int, dtype: torch.dtype) -> int:
        return 2 * n_layer * block_size * heads * head_dim * torch.empty((), dtype=dtype).element_size()

    def slots(self, table: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Slots of `positions` [B, N] of the sequences whose block tables are `table` [B, MB]; positions
        where `valid` is False map to the scratch slot."""
        block = (positions // self.block_size).clamp(max=table.shape[1] - 1)
        slot = table.gather(1, block) * self.block_size + positions % self.block_size
        return torch.where(valid, slot, torch.full_like(slot, self.scratch))


class OutOfBlocks(Exception):
    pass


class BlockAllocator:
    """Rank 0's free list of cache blocks (LIFO, so recently freed, cache-warm blocks are reused first)."""

    def __init__(self, num_blocks: int, block_size: int):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free = list(range(num_blocks - 1, -1, -1))

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def used(self) -> int:
        return self.num_blocks - len(self._free)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise OutOfBlocks(f"{n} blocks asked, {len(self._free)} free")
        out = self._free[len(self._free) - n :][::-1]
        del self._free[len(self._free) - n :]
        return out

    def release(self, blocks: Sequence[int]) -> None:
        self._free.extend(reversed(blocks))
