"""bloom-convert: the shard format, streaming conversion, TP-independent int8 weights, the DeepSpeed import."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from safetensors import safe_open

from bloom_worker.format import MANIFEST_NAME, QUANTIZED, Manifest
from worker_helpers import BIN, DS_MODEL, MODEL_A, assemble, build_hf, convert, hf_state, write_deepspeed


def test_manifest_describes_the_shards(shards_a: dict[int, Path]) -> None:
    m = Manifest.read(shards_a[8])
    assert m.format == "bloom-int8" and m.version == 1 and m.tensor_parallel_size == 8
    assert m.config.vocab_size == 250 and m.config.n_head == 8 and m.dtype == "float16"
    assert m.quantization.scheme == "int8-symmetric" and m.quantization.granularity == "per-channel"
    assert m.vocab_padded_size == 256 and m.tokenizer
    assert [(f.vocab_start, f.vocab_end) for f in m.files][-2:] == [(192, 224), (224, 250)]
    assert (shards_a[8] / "tokenizer.json").is_file()
    f = m.files[3]
    assert f.path == "rank-03-of-08.safetensors" and len(f.sha256) == 64
    assert f.tensors["h.1.self_attention.query_key_value.weight"] == {"dtype": "int8", "shape": [24, 64]}
    assert f.tensors["h.1.self_attention.dense.weight"] == {"dtype": "int8", "shape": [64, 8]}
    assert f.tensors["h.1.self_attention.dense.scale"] == {"dtype": "float32", "shape": [64]}
    assert f.tensors["word_embeddings.weight"] == {"dtype": "float16", "shape": [32, 64]}
    # a plain safetensors file, readable by the reference implementation
    with safe_open(str(shards_a[8] / f.path), framework="pt") as st:
        assert set(st.keys()) == set(f.tensors)
        assert st.get_tensor("h.0.mlp.dense_4h_to_h.weight").dtype == torch.int8


def test_int8_weights_are_the_same_for_every_tp_size(shards_a: dict[int, Path], model_a: Path) -> None:
    full = {tp: assemble(d) for tp, d in shards_a.items()}
    for tp in (2, 4, 8):
        assert full[tp].keys() == full[1].keys()
        for name, t in full[1].items():
            assert torch.equal(full[tp][name], t), f"TP={tp} {name} differs from TP=1"
    # quantization error of every weight is at most half its channel's scale
    ref = hf_state(model_a)
    for i in range(MODEL_A["n_layer"]):
        for q in QUANTIZED:
            base = f"h.{i}.{q}"
            err = (full[1][base + ".dequant"] - ref[base + ".weight"]).abs()
            assert torch.all(err <= full[1][base + ".scale_full"] * 0.5 + 1e-7), base
    assert torch.equal(full[1]["word_embeddings.weight"], ref["word_embeddings.weight"].half())


def test_refuses_a_tp_size_that_does_not_divide_the_heads(model_a: Path, tmp_path: Path) -> None:
    p = subprocess.run(
        [str(BIN / "bloom-convert"), str(model_a), str(tmp_path / "out"), "--tensor-parallel", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0
    assert "tensor-parallel size 3 does not divide the head count 8" in p.stderr
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_bin_shards_convert_to_the_same_files(work: Path, shards_a: dict[int, Path]) -> None:
    src = build_hf(work / "hf-a-bin", 1, True, safe=False, **MODEL_A)
    assert (src / "pytorch_model.bin").is_file() or (src / "pytorch_model.bin.index.json").is_file()
    out = convert(src, work / "a-bin-tp2", 2)
    a, b = Manifest.read(out), Manifest.read(shards_a[2])
    assert [f.sha256 for f in a.files] == [f.sha256 for f in b.files]


def test_group_wise_scales(model_a: Path, tmp_path: Path) -> None:
    out = convert(model_a, tmp_path / "g", 2, "--group-size", "16")
    m = Manifest.read(out)
    assert m.quantization.granularity == "group" and m.quantization.group_size == 16
    assert m.files[1].tensors["h.0.mlp.dense_4h_to_h.scale"]["shape"] == [64, 8]
    full = assemble(out)
    ref = hf_state(model_a)
    base = "h.0.mlp.dense_4h_to_h"
    w = full[base + ".dequant"]
    bound = full[base + ".scale_full"] * 0.5 + 1e-7
    assert torch.all((w - ref[base + ".weight"]).abs() <= bound)


# --- DeepSpeed-Inference INT8 import ---------------------------------------------------------


def ds_dequantized(ckpt: Path, tp: int = 4) -> dict[str, torch.Tensor]:
    """The full matrices the DeepSpeed checkpoint encodes at its own TP size: q * (group scale)."""
    cfg = json.loads((ckpt / "config.json").read_text())
    keys = {
        "self_attention.query_key_value": ("attention.attn_qkvw", 0),
        "self_attention.dense": ("attention.attn_ow", 1),
        "mlp.dense_h_to_4h": ("mlp.inter_w", 0),
        "mlp.dense_4h_to_h": ("mlp.output_w", 1),
    }
    sds = [{} for _ in range(tp)]
    for s in range(tp):
        for f in sorted(ckpt.glob(f"tp_{s:02d}_*.pt")):
            sds[s].update(torch.load(f, weights_only=True))
    out = {}
    for i in range(cfg["n_layer"]):
        for name, (k, dim) in keys.items():
            parts = []
            for s in range(tp):
                q, scale = sds[s][f"transformer.h.{i}.{k}"]
                g = scale.shape[0]
                parts.append((q.float().reshape(g, -1) * scale.reshape(-1)[:g, None]).reshape(q.shape))
            out[f"h.{i}.{name}"] = torch.cat(parts, dim=dim)
    return out


def test_deepspeed_import_is_lossless_and_resplits_4_to_8(ds: dict[str, Path]) -> None:
    want = ds_dequantized(ds["ckpt"])
    tp4, tp8 = assemble(ds["tp4"]), assemble(ds["tp8"])
    assert Manifest.read(ds["tp8"]).source["kind"] == "deepspeed-inference"
    for name, w in want.items():
        assert torch.equal(tp4[name + ".dequant"], w), name
    for name, t in tp4.items():
        assert torch.equal(tp8[name], t), f"re-split 4->8 changed {name}"


def test_deepspeed_import_matches_converting_the_original(ds: dict[str, Path]) -> None:
    imp, conv, ref = assemble(ds["tp4"]), assemble(ds["conv"]), hf_state(ds["src"])
    for name, t in conv.items():
        if name.endswith((".weight", ".scale_full", ".dequant")) and any(f".{q}." in name for q in QUANTIZED):
            continue
        assert torch.equal(imp[name], t), f"{name} differs from the converted original"
    for i in range(DS_MODEL["n_layer"]):
        for q in QUANTIZED:
            base = f"h.{i}.{q}"
            s_ds = imp[base + ".scale_full"]
            s_conv = conv[base + ".scale_full"]
            # DeepSpeed rounds with scale = absmax*2/256 and clamps +128 to 127: error <= one scale step
            assert torch.all((imp[base + ".dequant"] - ref[base + ".weight"]).abs() <= s_ds + 1e-7), base
            assert torch.all((imp[base + ".dequant"] - conv[base + ".dequant"]).abs() <= s_ds + s_conv / 2 + 1e-7), base
            assert torch.equal(imp[base + ".bias"], conv[base + ".bias"])


def test_deepspeed_import_refusals(ds: dict[str, Path], work: Path, tmp_path: Path) -> None:
    p = subprocess.run(
        [str(BIN / "bloom-convert"), str(ds["ckpt"]), str(tmp_path / "m"), "-t", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0 and "merging INT8 shards is not" in p.stderr
    no_half = write_deepspeed(ds["src"], work / "ds-int8-nohalf", half_scales=False)
    p = subprocess.run(
        [str(BIN / "bloom-convert"), str(no_half), str(tmp_path / "n"), "-t", "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0 and "needs the half-scales" in p.stderr
