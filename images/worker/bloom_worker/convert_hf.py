"""Stream a Hugging Face BLOOM checkpoint (safetensors or .bin shards) into the shard format.

One layer at a time: source tensors are memory-mapped (safetensors `safe_open`, `torch.load(mmap=True)`),
each matrix is quantized on its own and written straight to its offset in every rank file, so peak
memory is about one fp32 matrix, never the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .format import (
    COLUMN_PARALLEL,
    LAYER_NORMS,
    ModelConfig,
    Quantization,
    check_tp_size,
    quantize,
    split_cols,
    split_rows,
)
from .shards import write_shards


class HFSource:
    """Name -> tensor over a Hugging Face checkpoint directory, opening each file lazily."""

    def __init__(self, src: Path):
        self.src = src
        self.index: dict[str, str] = {}
        self.handles: dict[str, object] = {}
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            if (src / index_name).is_file():
                weight_map = json.loads((src / index_name).read_text())["weight_map"]
                self.index = {self._norm(k): v for k, v in weight_map.items()}
                break
        else:
            for single in ("model.safetensors", "pytorch_model.bin"):
                if (src / single).is_file():
                    self.index = {self._norm(k): single for k in self._keys(single)}
                    break
        if not self.index:
            raise FileNotFoundError(f"{src}: no model.safetensors[.index.json] or pytorch_model.bin[.index.json]")

    @staticmethod
    def _norm(name: str) -> str:
        return name[len("transformer.") :] if name.startswith("transformer.") else name

    def _open(self, file: str):
        h = self.handles.get(file)
        if h is None:
            path = self.src / file
            if file.endswith(".safetensors"):
                from safetensors import safe_open

                h = safe_open(str(path), framework="pt")
                h = {"st": h, "names": {self._norm(k): k for k in h.keys()}}
            else:
                sd = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
                h = {"sd": {self._norm(k): v for k, v in sd.items()}}
            self.handles[file] = h
        return h

    def _keys(self, file: str) -> list[str]:
        h = self._open(file)
        return list(h["names"]) if "names" in h else list(h["sd"])

    def rows(self, name: str, lo: int, hi: int) -> torch.Tensor:
        """Rows lo:hi of a tensor, reading only those (safetensors slices; .bin tensors are mmapped)."""
        file = self.index.get(name)
        if file is None:
            raise KeyError(f"{self.src}: checkpoint has no tensor {name}")
        h = self._open(file)
        if "st" in h:
            return h["st"].get_slice(h["names"][name])[lo:hi]
        return h["sd"][name][lo:hi]

    def shape(self, name: str) -> tuple[int, ...]:
        file = self.index.get(name)
        if file is None:
            raise KeyError(f"{self.src}: checkpoint has no tensor {name}")
        h = self._open(file)
        if "st" in h:
            return tuple(h["st"].get_slice(h["names"][name]).get_shape())
        return tuple(h["sd"][name].shape)

    def get(self, name: str) -> torch.Tensor:
        file = self.index.get(name)
        if file is None:
            raise KeyError(f"{self.src}: checkpoint has no tensor {name}")
        h = self._open(file)
        if "st" in h:
            return h["st"].get_tensor(h["names"][name])
        return h["sd"][name]


class EmbeddingRows:
    def __init__(self, source: HFSource):
        self.source = source
        self.shape = source.shape("word_embeddings.weight")

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return self.source.rows("word_embeddings.weight", rows.start, rows.stop)


def convert_hf(
    src: Path,
    out: Path,
    tp: int,
    dtype: str = "float16",
    group_size: int | None = None,
    chat_template: str | None = None,
) -> None:
    cfg = ModelConfig.from_hf(json.loads((src / "config.json").read_text()))
    check_tp_size(cfg, tp)
    quant = Quantization(granularity="group" if group_size else "per-channel", group_size=group_size)
    source = HFSource(src)
    globals_: dict[str, object] = {
        n: source.get(n)
        for n in (
            "word_embeddings_layernorm.weight",
            "word_embeddings_layernorm.bias",
            "ln_f.weight",
            "ln_f.bias",
        )
    }
    # the embedding (7 GB for BLOOM-176B) is read one rank's vocab slice at a time
    globals_["word_embeddings.weight"] = EmbeddingRows(source)

    def layer(i: int) -> list[dict[str, torch.Tensor]]:
        p = f"h.{i}."
        ranks: list[dict[str, torch.Tensor]] = [{} for _ in range(tp)]
        for ln in LAYER_NORMS:
            w, b = source.get(p + ln + ".weight"), source.get(p + ln + ".bias")
            for r in range(tp):
                ranks[r][ln + ".weight"], ranks[r][ln + ".bias"] = w, b
        for name in (
            "self_attention.query_key_value",
            "self_attention.dense",
            "mlp.dense_h_to_4h",
            "mlp.dense_4h_to_h",
        ):
            q, scale = quantize(source.get(p + name + ".weight"), group_size)
            bias = source.get(p + name + ".bias")
            for r in range(tp):
                if name in COLUMN_PARALLEL:
                    ranks[r][name + ".weight"] = split_rows(q, tp, r)
                    ranks[r][name + ".scale"] = split_rows(scale, tp, r)
                    ranks[r][name + ".bias"] = split_rows(bias, tp, r)
                else:  # row-parallel: split the inputs, keep the full-row scales and the full bias
                    ranks[r][name + ".weight"] = split_cols(q, tp, r)
                    ranks[r][name + ".scale"] = scale if scale.dim() == 1 else split_cols(scale, tp, r)
                    ranks[r][name + ".bias"] = bias
        return ranks

    write_shards(
        out, cfg, tp, dtype, quant, globals_, layer, {"kind": "huggingface", "path": str(src)}, src, chat_template
    )
