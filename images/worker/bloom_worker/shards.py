"""Writing a whole shard directory: shared by the Hugging Face converter and the DeepSpeed importer."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from .format import (
    DTYPES,
    MANIFEST_NAME,
    TOKENIZER_FILES,
    Manifest,
    ModelConfig,
    Quantization,
    RankFile,
    ShardWriter,
    padded_vocab,
    rank_file_name,
    rank_tensor_specs,
)

# layer_fn(i) returns, for every target rank, that rank's tensors of layer i (names without "h.{i}.")
LayerFn = Callable[[int], list[dict[str, torch.Tensor]]]


def progress(iterable: Iterable[int], total: int, desc: str) -> Iterable[int]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="layer", file=sys.stderr, disable=None)


def write_shards(
    out: Path,
    cfg: ModelConfig,
    tp: int,
    dtype: str,
    quant: Quantization,
    globals_: dict[str, Any],
    layer_fn: LayerFn,
    source: dict,
    tokenizer_dir: Path | None,
    chat_template: str | None = None,
) -> Manifest:
    """globals_: word_embeddings.weight (anything with .shape and row slicing: a memory-mapped tensor or a
    lazy row reader), word_embeddings_layernorm.*, ln_f.* tensors."""
    specs = rank_tensor_specs(cfg, tp, dtype, quant)
    out.mkdir(parents=True, exist_ok=True)
    stale = out / MANIFEST_NAME
    if stale.exists():
        stale.unlink()  # a half-written directory must never look complete
    dt = DTYPES[dtype]
    writers = [ShardWriter(out / rank_file_name(r, tp), specs) for r in range(tp)]
    vp = padded_vocab(cfg.vocab_size, tp)
    per = vp // tp
    try:
        emb = globals_["word_embeddings.weight"]
        if tuple(emb.shape) != (cfg.vocab_size, cfg.hidden_size):
            raise ValueError(
                f"word_embeddings.weight is {tuple(emb.shape)}, config says {(cfg.vocab_size, cfg.hidden_size)}"
            )
        for r, w in enumerate(writers):
            lo, hi = r * per, min((r + 1) * per, cfg.vocab_size)
            part = torch.zeros(per, cfg.hidden_size, dtype=dt)
            if hi > lo:
                part[: hi - lo] = emb[lo:hi].to(dt)
            w.write("word_embeddings.weight", part)
            for name in (
                "word_embeddings_layernorm.weight",
                "word_embeddings_layernorm.bias",
                "ln_f.weight",
                "ln_f.bias",
            ):
                w.write(name, globals_[name].to(dt))
        del emb
        for i in progress(range(cfg.n_layer), cfg.n_layer, f"converting for TP={tp}"):
            per_rank = layer_fn(i)
            for r, w in enumerate(writers):
                for name, t in per_rank[r].items():
                    target = w.specs[f"h.{i}.{name}"]
                    w.write(f"h.{i}.{name}", t.to(DTYPES[target.dtype]))
        files = []
        for r, w in enumerate(writers):
            size, digest, fast = w.close()
            files.append(
                RankFile(
                    rank=r,
                    path=w.path.name,
                    bytes=size,
                    sha256=digest,
                    xxh3_128=fast,
                    vocab_start=r * per,
                    vocab_end=min((r + 1) * per, cfg.vocab_size),
                    tensors={s.name: {"dtype": s.dtype, "shape": list(s.shape)} for s in specs},
                )
            )
    except BaseException:
        for w in writers:
            w.f.close()
        raise
    has_tok = False
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copyfile(tokenizer_dir / name, out / name)
                has_tok = has_tok or name == "tokenizer.json"
    manifest = Manifest(
        config=cfg,
        tensor_parallel_size=tp,
        dtype=dtype,
        quantization=quant,
        vocab_padded_size=vp,
        files=files,
        tokenizer=has_tok,
        source=source,
        chat_template=chat_template,
    )
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, out / MANIFEST_NAME)
    return manifest
