"""Import a DeepSpeed-Inference INT8 BLOOM checkpoint (microsoft/bloom-deepspeed-inference-int8 layout).

Layout (see shared/research/bloom_int8.md and DeepSpeed's replace_module.py / load_checkpoint.py):

* ``ds_inference_config.json`` (or ``ds-inference_config.json``): ``{"type": "BLOOM", "checkpoints":
  {"non_tp": ["non-tp.pt"], "tp": [...]}, "tp_size": S, "dtype": "int8", "parallelization": "tp"}``;
  the tp list is ordered ``tp_00_00, tp_01_00, ..., tp_{S-1}_00, tp_00_01, ...``: ``tp_RR_CC`` holds
  chunk CC (a slice of the layers) of source rank RR. ``config.json`` of the model sits beside it.
* ``non-tp.pt``: the unsplit ``word_embeddings``, ``word_embeddings_layernorm`` and ``ln_f`` (fp16).
* tp files: ``transformer.h.{i}.`` + ``norm_w/norm_b`` (input_layernorm), ``attention.attn_qkvw``,
  ``attention.attn_qkvb``, ``attention.attn_ow``, ``attention.attn_ob``, ``mlp.attn_nw/attn_nb``
  (post_attention_layernorm), ``mlp.inter_w/inter_b``, ``mlp.output_w/output_b``. The four matrices are
  ``[int8 [out, in], scale]`` lists; scale is ``(G, 3)`` (or ``(G, 1)``): viewed flat, G scales of the
  whole rank tensor, then G scales of each half along the parallel dimension (DeepSpeed's
  GroupQuantizer: G contiguous groups of the flattened tensor, scale = absmax*2/256, w = q*scale).

Re-split S -> N = k*S (e.g. the public 4-way checkpoint onto 8 ranks): source rank s = r // k gives
part r % k of every tensor (rows of column-parallel, columns of row-parallel ones). As DeepSpeed does,
a re-split requires the half-scales to be present. But GroupQuantizer computes the int8 codes with the
*full* group scales (the half-scales are computed beside them, never used to round), so dequantizing a
half with its half-scale would change the weights; this importer keeps the full group scale of every
row instead, which reproduces exactly the weights the checkpoint encodes at its own TP size. When the
G groups cover whole rows (true for BLOOM-176B at S=4 with G=32, and for DeepSpeed >= 0.7.7 where G is
the row count) that is a per-output-channel scale, the project's format; other layouts are refused.
Merging (N < S) is refused, as DeepSpeed refuses it for INT8.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .format import ModelConfig, Quantization, check_tp_size, split_cols, split_rows
from .shards import write_shards

CONFIG_NAMES = ("ds_inference_config.json", "ds-inference_config.json")

# project name -> (DeepSpeed name, column-parallel?)
MATRICES = {
    "self_attention.query_key_value": ("attention.attn_qkvw", "attention.attn_qkvb", True),
    "self_attention.dense": ("attention.attn_ow", "attention.attn_ob", False),
    "mlp.dense_h_to_4h": ("mlp.inter_w", "mlp.inter_b", True),
    "mlp.dense_4h_to_h": ("mlp.output_w", "mlp.output_b", False),
}
NORMS = {"input_layernorm": "norm_", "post_attention_layernorm": "mlp.attn_n"}


class DeepSpeedImportError(ValueError):
    pass


def find_config(src: Path) -> Path | None:
    for name in CONFIG_NAMES:
        if (src / name).is_file():
            return src / name
    return None


def _strip(name: str) -> str:
    return name[len("transformer.") :] if name.startswith("transformer.") else name


def _load(path: Path) -> dict[str, object]:
    sd = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    return {_strip(k): v for k, v in sd.items()}


def row_scales(scale: torch.Tensor, out: int, name: str) -> torch.Tensor:
    """DeepSpeed's G flat-group scales of an [out, in] tensor -> one scale per output row."""
    g = scale.shape[0]
    full = scale.reshape(-1)[:g].to(torch.float32)
    if out % g:
        raise DeepSpeedImportError(
            f"{name}: {g} quantization groups do not cover whole rows of a {out}-row tensor; "
            f"this layout is not representable with per-channel scales"
        )
    return full.repeat_interleave(out // g)


def import_deepspeed(src: Path, out: Path, tp: int, dtype: str = "float16", chat_template: str | None = None) -> None:
    cfg_path = find_config(src)
    if cfg_path is None:
        raise DeepSpeedImportError(f"{src}: no ds_inference_config.json")
    ds = json.loads(cfg_path.read_text())
    if str(ds.get("type", "")).lower() not in ("bloom", "ds_model"):
        raise DeepSpeedImportError(f"{cfg_path.name}: type {ds.get('type')!r} is not BLOOM")
    if ds.get("parallelization", "tp") != "tp":
        raise DeepSpeedImportError(f"{cfg_path.name}: parallelization {ds.get('parallelization')!r}, expected 'tp'")
    src_tp = int(ds.get("mp_size", ds.get("tp_size", 0)))
    tp_list: list[str] = list(ds["checkpoints"]["tp"])
    non_tp: list[str] = list(ds["checkpoints"].get("non_tp", []))
    if src_tp < 1 or len(tp_list) % src_tp:
        raise DeepSpeedImportError(f"{cfg_path.name}: {len(tp_list)} tp files do not split into tp_size={src_tp}")
    if not (src / "config.json").is_file():
        raise DeepSpeedImportError(f"{src}: config.json (the model config) is missing")
    cfg = ModelConfig.from_hf(json.loads((src / "config.json").read_text()))
    check_tp_size(cfg, tp)
    if tp < src_tp or tp % src_tp:
        raise DeepSpeedImportError(
            f"cannot import a tp_size={src_tp} INT8 checkpoint for {tp} ranks: only splitting into a "
            f"multiple of {src_tp} is supported (merging INT8 shards is not)"
        )
    k = tp // src_tp
    chunks = len(tp_list) // src_tp

    # source rank s -> merged state dict of its chunk files (memory-mapped)
    per_src: list[dict[str, object]] = []
    for s in range(src_tp):
        sd: dict[str, object] = {}
        for c in range(chunks):
            sd.update(_load(src / base_dir(ds, tp_list[c * src_tp + s])))
        per_src.append(sd)
    glob: dict[str, object] = {}
    for name in non_tp:
        glob.update(_load(src / base_dir(ds, name)))
    globals_ = {}
    for n in (
        "word_embeddings.weight",
        "word_embeddings_layernorm.weight",
        "word_embeddings_layernorm.bias",
        "ln_f.weight",
        "ln_f.bias",
    ):
        if n not in glob:
            raise DeepSpeedImportError(f"non-tp checkpoint lacks {n}")
        globals_[n] = glob[n]

    def get(s: int, key: str) -> object:
        v = per_src[s].get(key)
        if v is None:
            raise DeepSpeedImportError(f"tp files of source rank {s} lack {key}")
        return v

    def layer(i: int) -> list[dict[str, torch.Tensor]]:
        p = f"h.{i}."
        ranks: list[dict[str, torch.Tensor]] = [{} for _ in range(tp)]
        for r in range(tp):
            s, j = divmod(r, k)
            for ln, prefix in NORMS.items():
                ranks[r][ln + ".weight"] = get(s, p + prefix + "w")  # type: ignore[assignment]
                ranks[r][ln + ".bias"] = get(s, p + prefix + "b")  # type: ignore[assignment]
            for name, (wkey, bkey, column) in MATRICES.items():
                entry = get(s, p + wkey)
                if not isinstance(entry, list | tuple) or len(entry) != 2:
                    raise DeepSpeedImportError(f"{p + wkey}: expected an [int8, scale] entry (dtype int8 checkpoint)")
                q, scale = entry
                if q.dtype != torch.int8:
                    raise DeepSpeedImportError(f"{p + wkey}: weights are {q.dtype}, expected int8")
                if k > 1 and scale.numel() < 3 * scale.shape[0]:
                    raise DeepSpeedImportError(
                        f"{p + wkey}: splitting tp_size={src_tp} to {tp} needs the half-scales, "
                        f"but the scale has shape {tuple(scale.shape)}"
                    )
                rs = row_scales(scale, q.shape[0], p + wkey)
                bias = get(s, p + bkey)
                if column:
                    ranks[r][name + ".weight"] = split_rows(q, k, j)
                    ranks[r][name + ".scale"] = split_rows(rs, k, j)
                    ranks[r][name + ".bias"] = split_rows(bias, k, j)  # type: ignore[arg-type]
                else:
                    ranks[r][name + ".weight"] = split_cols(q, k, j)
                    ranks[r][name + ".scale"] = rs
                    ranks[r][name + ".bias"] = bias  # type: ignore[assignment]
        return ranks

    write_shards(
        out,
        cfg,
        tp,
        dtype,
        Quantization(),
        globals_,
        layer,
        {"kind": "deepspeed-inference", "path": str(src), "tp_size": src_tp},
        src,
        chat_template,
    )


def base_dir(ds: dict, name: str) -> str:
    base = ds.get("base_dir") or ""
    return str(Path(base) / name) if base and not Path(name).is_absolute() else name
