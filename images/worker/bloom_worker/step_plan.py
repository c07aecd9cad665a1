"""One engine step as rank 0 plans it and every rank runs it: a decode pass (one token per running
sequence) and a prefill pass (chunks of prompts), each a batch of rows into the paged KV cache.

A row feeds `nvalid` tokens at cache positions start..start+nvalid-1 of the sequence whose block table
it carries, and says which logits rank 0 needs back (`mode`): none (a prompt chunk that is not the
last), the arg-max of its last position (greedy rows without logprobs: a distributed arg-max, no
logits travel), the full-vocab logits of its last position (sampling, penalties, logprobs), or of all
its positions (prompt logprobs). The wire format is two int64 broadcasts per step: a fixed header with
the shapes, then one flat payload.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODE_NONE, MODE_ARGMAX, MODE_LAST, MODE_ALL = 0, 1, 2, 3
CMD_IDLE, CMD_STEP, CMD_STOP = 0, 1, 2
HEADER = 7  # cmd, decode rows, decode table width, prefill rows, prefill width (tokens), prefill table width, 0


@dataclass(frozen=True)
class Row:
    ids: list[int]
    start: int
    table: list[int]
    mode: int


@dataclass(frozen=True)
class Pass:
    ids: torch.Tensor  # [B, T] (0 past nvalid)
    start: torch.Tensor  # [B]
    nvalid: torch.Tensor  # [B]
    table: torch.Tensor  # [B, MB] (block 0 past a sequence's blocks: never read unmasked)
    mode: torch.Tensor  # [B]

    @staticmethod
    def of(rows: list[Row]) -> Pass:
        b, t, mb = len(rows), max(len(r.ids) for r in rows), max(len(r.table) for r in rows)
        ids = torch.zeros(b, t, dtype=torch.int64)
        table = torch.zeros(b, mb, dtype=torch.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r.ids)] = torch.tensor(r.ids, dtype=torch.int64)
            table[i, : len(r.table)] = torch.tensor(r.table, dtype=torch.int64)
        start = torch.tensor([r.start for r in rows], dtype=torch.int64)
        nvalid = torch.tensor([len(r.ids) for r in rows], dtype=torch.int64)
        mode = torch.tensor([r.mode for r in rows], dtype=torch.int64)
        return Pass(ids, start, nvalid, table, mode)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.ids.shape[0], self.ids.shape[1], self.table.shape[1]

    def flat(self) -> torch.Tensor:
        return torch.cat([self.ids.flatten(), self.start, self.nvalid, self.table.flatten(), self.mode])

    @staticmethod
    def size(b: int, t: int, mb: int) -> int:
        return b * t + 3 * b + b * mb

    @staticmethod
    def unflat(buf: torch.Tensor, b: int, t: int, mb: int) -> Pass:
        parts = torch.split(buf, [b * t, b, b, b * mb, b])
        return Pass(parts[0].view(b, t), parts[1], parts[2], parts[3].view(b, mb), parts[4])

    def selection(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(row, position) pairs whose hidden states give logits: those for the distributed arg-max, and
        those whose full-vocab logits go to rank 0, in row order."""
        argmax: list[tuple[int, int]] = []
        full: list[tuple[int, int]] = []
        for i, (m, n) in enumerate(zip(self.mode.tolist(), self.nvalid.tolist(), strict=True)):
            if m == MODE_ARGMAX:
                argmax.append((i, n - 1))
            elif m == MODE_LAST:
                full.append((i, n - 1))
            elif m == MODE_ALL:
                full.extend((i, p) for p in range(n))
        return argmax, full


@dataclass(frozen=True)
class StepPlan:
    decode: Pass | None
    prefill: Pass | None

    def header(self, cmd: int = CMD_STEP) -> torch.Tensor:
        d = self.decode.shape if self.decode is not None else (0, 0, 0)
        p = self.prefill.shape if self.prefill is not None else (0, 0, 0)
        return torch.tensor([cmd, d[0], d[2], p[0], p[1], p[2], 0], dtype=torch.int64)

    def payload(self) -> torch.Tensor:
        return torch.cat([p.flat() for p in (self.decode, self.prefill) if p is not None])

    @staticmethod
    def payload_size(header: list[int]) -> int:
        _, bd, mbd, bp, tp, mbp, _ = header
        return Pass.size(bd, 1, mbd) + Pass.size(bp, tp, mbp)

    @staticmethod
    def parse(header: list[int], payload: torch.Tensor) -> StepPlan:
        _, bd, mbd, bp, tp, mbp, _ = header
        nd = Pass.size(bd, 1, mbd)
        decode = Pass.unflat(payload[:nd], bd, 1, mbd) if bd else None
        prefill = Pass.unflat(payload[nd:], bp, tp, mbp) if bp else None
        return StepPlan(decode, prefill)


def idle_header(cmd: int) -> torch.Tensor:
    return torch.tensor([cmd, 0, 0, 0, 0, 0, 0], dtype=torch.int64)
