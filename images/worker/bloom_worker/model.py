"""Tensor-parallel BLOOM over one rank's INT8 shard (Megatron split, two all-reduces per layer).

* word embeddings: vocab-parallel (each rank a contiguous vocab slice; out-of-slice ids give zero
  rows; one all-reduce), followed by word_embeddings_layernorm;
* query_key_value, dense_h_to_4h: column-parallel (BLOOM's fused QKV is interleaved per head, so a
  contiguous row slice holds whole heads), no communication;
* self_attention.dense, dense_4h_to_h: row-parallel, all-reduce of the partial sums, then the bias;
* ALiBi: each rank uses its own contiguous slice of the per-head slopes;
* LM head: tied to the embedding, local logits over the rank's vocab slice, all-gathered.

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
from .loader import Shard

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

    def all_gather_last(self, x: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        with self._inside("all_gather"):
            dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)

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


class KVCache:
    """Preallocated keys and values of every layer: [B, local heads, max_len, head_dim]."""

    def __init__(
        self,
        n_layer: int,
        batch: int,
        heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.k = [torch.empty(batch, heads, max_len, head_dim, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.empty(batch, heads, max_len, head_dim, dtype=dtype, device=device) for _ in range(n_layer)]
        self.length = 0
        self.max_len = max_len


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
    def __init__(self, shard: Shard, comm: Comm, device: torch.device, dtype: torch.dtype | None = None):
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
        self.slopes = alibi_slopes(self.cfg.n_head)[r * self.heads : (r + 1) * self.heads].to(device)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache(self.cfg.n_layer, batch, self.heads, max_len, self.head_dim, self.dtype, self.device)

    def _ln(self, x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), wb[0], wb[1], self.cfg.layer_norm_epsilon)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        local = ids - self.vocab_start
        valid = (local >= 0) & (local < self.emb.shape[0])
        x = F.embedding(local.clamp(0, self.emb.shape[0] - 1), self.emb) * valid.unsqueeze(-1).to(self.dtype)
        return self.comm.all_reduce(x)

    @torch.inference_mode()
    def forward(
        self, ids: torch.Tensor, cache: KVCache, key_mask: torch.Tensor, all_logits: bool = False
    ) -> torch.Tensor:
        """ids [B, T] appended at cache.length; key_mask [B, cache.length + T] (False = padding).

        Returns full-vocab fp32 logits [B, T, V] if all_logits else [B, V] of the last position,
        identical on every rank.
        """
        b, t = ids.shape
        start = cache.length
        end = start + t
        if end > cache.max_len:
            raise ValueError(f"sequence of {end} tokens exceeds the cache of {cache.max_len}")
        h, hd = self.heads, self.head_dim
        x = self._ln(self._embed(ids), self.emb_ln)
        # additive bias [B, H, T, S]: ALiBi (slope * key position; the per-row offset of left padding
        # cancels in the softmax), causal mask and key padding mask
        pos = torch.arange(end, device=self.device)
        alibi = self.slopes.view(1, h, 1, 1) * pos.view(1, 1, 1, end).to(torch.float32)
        causal = pos.view(1, end) <= (start + torch.arange(t, device=self.device)).view(t, 1)  # [T, S]
        allowed = causal.view(1, 1, t, end) & key_mask[:, :end].view(b, 1, 1, end)
        bias = alibi.masked_fill(~allowed, torch.finfo(torch.float32).min)
        inv_norm = 1.0 / math.sqrt(hd)
        for i, L in enumerate(self.layers):
            ln1 = self._ln(x, L.ln1)
            qkv = L.qkv(ln1).view(b, t, h, 3, hd)
            q, k, v = (qkv[:, :, :, j].transpose(1, 2) for j in range(3))  # [B, H, T, hd]
            cache.k[i][:, :, start:end] = k
            cache.v[i][:, :, start:end] = v
            keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]
            scores = torch.matmul(q, keys.transpose(-1, -2)).float() * inv_norm + bias  # softmax in fp32
            probs = torch.softmax(scores, dim=-1).to(self.dtype)
            ctx = torch.matmul(probs, values).transpose(1, 2).reshape(b, t, h * hd)
            attn = self.comm.all_reduce(L.dense(ctx, add_bias=False)) + L.dense.bias
            residual = ln1 if self.cfg.apply_residual_connection_post_layernorm else x
            x = residual + attn
            ln2 = self._ln(x, L.ln2)
            hidden = F.gelu(L.fc1(ln2), approximate="tanh")
            mlp = self.comm.all_reduce(L.fc2(hidden, add_bias=False)) + L.fc2.bias
            residual = ln2 if self.cfg.apply_residual_connection_post_layernorm else x
            x = residual + mlp
        cache.length = end
        x = self._ln(x if all_logits else x[:, -1], self.ln_f)
        local = torch.matmul(x, self.emb.T).float()
        return self.comm.all_gather_last(local)[..., : self.cfg.vocab_size]
