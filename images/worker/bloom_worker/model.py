"""Tensor-parallel BLOOM over one rank's INT8 shard (Megatron split, two all-reduces per layer).

* word embeddings: vocab-parallel (each rank a contiguous vocab slice; out-of-slice ids give zero
  rows; one all-reduce), followed by word_embeddings_layernorm;
* query_key_value, dense_h_to_4h: column-parallel (BLOOM's fused QKV is interleaved per head, so a
  contiguous row slice holds whole heads), no communication;
* self_attention.dense, dense_4h_to_h: row-parallel, all-reduce of the partial sums, then the bias;
* ALiBi: each rank uses its own contiguous slice of the per-head slopes;
* LM head: tied to the embedding, local logits over the rank's vocab slice; only rank 0 gets what it
  samples from (a distributed arg-max, or the full logits of the rows that need them);
* attention: keys and values in a paged cache (kv_cache.py), scaled-dot-product attention with one
  additive ALiBi + mask bias per pass.

Every matmul with int8 weights goes through `bloom_kernels.int8_matmul`.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from bloom_kernels import int8_matmul

from .format import DTYPES, ModelConfig
from .health import Progress
from .kv_cache import KVCache
from .loader import Shard
from .step_plan import Pass

_NO_OP = nullcontext()


@dataclass
class Comm:
    """The tensor-parallel group: collectives only when a process group exists (a group of one needs
    none; one built anyway, e.g. to test a backend, is used). Every collective is marked on `progress`
    (the engine's heartbeat): a rank blocked in one shows which, and for how long."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False
    progress: Progress | None = None

    def _inside(self, name: str) -> AbstractContextManager[None]:
        return _NO_OP if self.progress is None else self.progress.inside(name)

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            with self._inside("all_reduce"):
                dist.all_reduce(x)
        return x

    def gather(self, x: torch.Tensor) -> torch.Tensor | None:
        """Every rank's `x` stacked [world, ...] on rank 0 (None on the others): what only the sampler needs
        travels to rank 0 alone, never to every rank."""
        if not self.distributed:
            return x.unsqueeze(0)
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(self.world_size)] if self.rank == 0 else None
        with self._inside("gather"):
            dist.gather(x, parts, dst=0)
        return torch.stack(parts) if parts is not None else None

    def min(self, value: int) -> int:
        """The smallest `value` of all ranks (a CPU tensor: the control channel)."""
        t = torch.tensor([value], dtype=torch.int64)
        if self.distributed:
            with self._inside("all_reduce"):
                dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def broadcast(self, x: torch.Tensor, src: int = 0) -> torch.Tensor:
        if self.distributed:
            with self._inside("broadcast"):
                dist.broadcast(x, src)
        return x


def alibi_slopes(n_head: int) -> torch.Tensor:
    """BLOOM's ALiBi slopes for all heads (as transformers' build_alibi_tensor computes them)."""
    closest = 2 ** math.floor(math.log2(n_head))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest != n_head:
        extra_base = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        n_extra = min(closest, n_head - closest)
        slopes += [extra_base ** (2 * i + 1) for i in range(n_extra)]
    return torch.tensor(slopes, dtype=torch.float32)


class QLinear:
    def __init__(self, t: dict[str, torch.Tensor], prefix: str, device: torch.device, dtype: torch.dtype):
        self.w = t[prefix + ".weight"].to(device)
        self.scale = t[prefix + ".scale"].to(device)
        self.bias = t[prefix + ".bias"].to(device=device, dtype=dtype)

    def __call__(self, x: torch.Tensor, add_bias: bool = True) -> torch.Tensor:
        return int8_matmul(x, self.w, self.scale, self.bias if add_bias else None)


@dataclass
class Layer:
    ln1: tuple[torch.Tensor, torch.Tensor]
    ln2: tuple[torch.Tensor, torch.Tensor]
    qkv: QLinear  # column-parallel
    dense: QLinear  # row-parallel
    fc1: QLinear  # column-parallel
    fc2: QLinear  # row-parallel


class BloomTP:
    def __init__(
        self,
        shard: Shard,
        comm: Comm,
        device: torch.device,
        dtype: torch.dtype | None = None,
        max_context: int = 2048,
    ):
        m = shard.manifest
        self.cfg: ModelConfig = m.config
        self.comm = comm
        self.device = device
        # CPU computes in fp32; accelerators in the shard's storage dtype
        self.dtype = dtype or (torch.float32 if device.type == "cpu" else DTYPES[m.dtype])
        tp = m.tensor_parallel_size
        self.heads = self.cfg.n_head // tp
        self.head_dim = self.cfg.head_dim
        self.vocab_start = shard.vocab_start
        self.max_context = max_context
        self.positions = torch.arange(max_context, device=device)
        t = shard.tensors

        def vec(name: str) -> torch.Tensor:
            return t[name].to(device=device, dtype=self.dtype)

        self.emb = vec("word_embeddings.weight")
        self.emb_ln = (vec("word_embeddings_layernorm.weight"), vec("word_embeddings_layernorm.bias"))
        self.ln_f = (vec("ln_f.weight"), vec("ln_f.bias"))
        self.layers: list[Layer] = []
        for i in range(self.cfg.n_layer):
            p = f"h.{i}."
            self.layers.append(
                Layer(
                    ln1=(vec(p + "input_layernorm.weight"), vec(p + "input_layernorm.bias")),
                    ln2=(vec(p + "post_attention_layernorm.weight"), vec(p + "post_attention_layernorm.bias")),
                    qkv=QLinear(t, p + "self_attention.query_key_value", device, self.dtype),
                    dense=QLinear(t, p + "self_attention.dense", device, self.dtype),
                    fc1=QLinear(t, p + "mlp.dense_h_to_4h", device, self.dtype),
                    fc2=QLinear(t, p + "mlp.dense_4h_to_h", device, self.dtype),
                )
            )
        r = comm.rank
        self.vocab_size_local = max(0, min(self.emb.shape[0], self.cfg.vocab_size - self.vocab_start))
        self.slopes = alibi_slopes(self.cfg.n_head)[r * self.heads : (r + 1) * self.heads].to(device)

    def new_cache(self, num_blocks: int, block_size: int) -> KVCache:
        return KVCache(self.cfg.n_layer, num_blocks, block_size, self.heads, self.head_dim, self.dtype, self.device)

    def block_bytes(self, block_size: int) -> int:
        return KVCache.bytes_per_block(self.cfg.n_layer, block_size, self.heads, self.head_dim, self.dtype)

    def _ln(self, x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), wb[0], wb[1], self.cfg.layer_norm_epsilon)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        local = ids - self.vocab_start
        valid = (local >= 0) & (local < self.emb.shape[0])
        x = F.embedding(local.clamp(0, self.emb.shape[0] - 1), self.emb) * valid.unsqueeze(-1).to(self.dtype)
        return self.comm.all_reduce(x)

    def _attention_bias(self, p: Pass, positions: torch.Tensor, length: int) -> torch.Tensor:
        """[B, H, T, L] additive bias: ALiBi relative to the query position (the softmax is shift-invariant
        per query, and small magnitudes near the query keep fp16 exact), -inf-like where a key is in the
        future or past the row's tokens. Built once per pass, shared by every layer."""
        keys = self.positions[:length]
        allowed = (keys.view(1, 1, -1) <= positions.unsqueeze(-1)) & (
            keys.view(1, 1, -1) < (p.start + p.nvalid).to(self.device).view(-1, 1, 1)
        )
        rel = (keys.view(1, 1, -1) - positions.unsqueeze(-1)).to(torch.float32)  # [B, T, L]
        bias = self.slopes.view(1, -1, 1, 1) * rel.unsqueeze(1)
        return bias.masked_fill(~allowed.unsqueeze(1), torch.finfo(torch.float32).min).to(self.dtype)

    @torch.inference_mode()
    def forward(self, p: Pass, cache: KVCache) -> torch.Tensor:
        """Runs the pass's rows through every layer, writing their keys and values into their slots of
        `cache`; returns the final hidden states [B, T, hidden] (before ln_f), identical on every rank."""
        b, t, _ = p.shape
        dev = self.device
        ids, table = p.ids.to(dev), p.table.to(dev)
        offsets = self.positions[:t].view(1, t)
        positions = p.start.to(dev).view(b, 1) + offsets  # [B, T]
        valid = offsets < p.nvalid.to(dev).view(b, 1)
        length = int((p.start + p.nvalid).max())
        if length > self.positions.numel():
            raise ValueError(f"sequence of {length} tokens exceeds the context of {self.positions.numel()}")
        write = cache.slots(table, positions, valid).flatten()
        read = cache.slots(
            table, self.positions[:length].expand(b, length), torch.ones(b, length, dtype=torch.bool, device=dev)
        )
        bias = self._attention_bias(p, positions, length)
        h, hd = self.heads, self.head_dim
        x = self._ln(self._embed(ids), self.emb_ln)
        for i, L in enumerate(self.layers):
            ln1 = self._ln(x, L.ln1)
            qkv = L.qkv(ln1).view(b, t, h, 3, hd)
            q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]  # [B, T, H, hd]
            cache.k[i].index_copy_(0, write, k.reshape(b * t, h, hd))
            cache.v[i].index_copy_(0, write, v.reshape(b * t, h, hd))
            keys = cache.k[i][read].transpose(1, 2)  # [B, H, L, hd]
            values = cache.v[i][read].transpose(1, 2)
            ctx = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=bias)
            ctx = ctx.transpose(1, 2).reshape(b, t, h * hd)
            attn = self.comm.all_reduce(L.dense(ctx, add_bias=False)) + L.dense.bias
            residual = ln1 if self.cfg.apply_residual_connection_post_layernorm else x
            x = residual + attn
            ln2 = self._ln(x, L.ln2)
            hidden = F.gelu(L.fc1(ln2), approximate="tanh")
            mlp = self.comm.all_reduce(L.fc2(hidden, add_bias=False)) + L.fc2.bias
            residual = ln2 if self.cfg.apply_residual_connection_post_layernorm else x
            x = residual + mlp
        return x

    def _local_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self._ln(x, self.ln_f), self.emb.T).float()  # [N, local vocab]

    @torch.inference_mode()
    def head(self, x: torch.Tensor, p: Pass) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """From the hidden states of a pass, what rank 0 needs and nothing more: the arg-max token ids
        of the MODE_ARGMAX rows (each rank reduces its vocab slice, only (value, id) pairs travel) and
        the full-vocab fp32 logits [N, vocab] of the MODE_LAST / MODE_ALL positions (gathered to rank 0
        only). Both are None on the other ranks, and None when no row asks for them."""
        argmax_at, full_at = p.selection()
        top = full = None
        if argmax_at:
            rows, pos = zip(*argmax_at, strict=True)
            local = self._local_logits(x[list(rows), list(pos)])
            local[:, self.vocab_size_local :] = float("-inf")  # vocab padding rows are never produced
            value, index = local.max(dim=-1)
            pairs = torch.stack([value.double(), (index + self.vocab_start).double()], dim=-1)  # [N, 2]
            gathered = self.comm.gather(pairs)
            if gathered is not None:
                best = gathered[..., 0].argmax(dim=0)  # [N]: the first rank wins ties = the lowest id
                top = gathered[..., 1].gather(0, best.view(1, -1)).view(-1).to(torch.int64)
        if full_at:
            rows, pos = zip(*full_at, strict=True)
            gathered = self.comm.gather(self._local_logits(x[list(rows), list(pos)]))
            if gathered is not None:
                full = torch.cat(list(gathered), dim=-1)[:, : self.cfg.vocab_size]
        return top, full
