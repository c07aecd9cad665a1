"""A tiny random BLOOM for the process-node e2e test and `npm run demo` (dev/test tool, not shipped).

    .venv/bin/python test/processnode/make_tiny_model.py OUT --tp 4 --tp 1

writes OUT/hf (a Hugging Face BloomForCausalLM with a word-level tokenizer, so text prompts work),
then OUT/tiny-bloom-int8-tp<N> for every --tp with the project's converter (`bloom-convert`), and
last OUT/READY.json (the marker callers cache on). Deterministic: the same seed gives the same model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# 8 heads (TP 1/2/4/8 split whole heads); vocab 250 does not divide by 4 or 8 (padded vocab slices)
CONFIG = dict(vocab_size=250, hidden_size=64, n_layer=2, n_head=8)
WORDS = ["hello", "world", "bloom", "int8", "tensor", "parallel", "the", "a", "of", "kubernetes", "operator", "model"]
VERSION = 1


def tokenizer(vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for w in WORDS:
        vocab[w] = len(vocab)
    i = 0
    while len(vocab) < vocab_size:
        vocab[f"w{i}"] = len(vocab)
        i += 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--tp", type=int, action="append", required=True, help="tensor-parallel size (repeatable)")
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args(argv)

    import torch
    from transformers import BloomConfig, BloomForCausalLM

    from bloom_worker.convert import main as convert

    out: Path = args.out
    marker = out / "READY.json"
    if marker.exists():
        marker.unlink()
    out.mkdir(parents=True, exist_ok=True)
    hf = out / "hf"
    shutil.rmtree(hf, ignore_errors=True)
    torch.manual_seed(args.seed)
    # initializer_range 0.2 (not 0.02): logits spread out, so greedy decoding is not a flat tie
    model = BloomForCausalLM(BloomConfig(initializer_range=0.2, **CONFIG)).eval()
    model.save_pretrained(hf)
    tokenizer(CONFIG["vocab_size"]).save(str(hf / "tokenizer.json"))  # type: ignore[attr-defined]
    shards = {}
    for tp in sorted(set(args.tp)):
        dst = out / f"tiny-bloom-int8-tp{tp}"
        shutil.rmtree(dst, ignore_errors=True)
        if convert([str(hf), str(dst), "--tensor-parallel", str(tp)]) != 0:
            print(f"make_tiny_model: conversion to TP={tp} failed", file=sys.stderr)
            return 1
        shards[tp] = str(dst)
    marker.write_text(json.dumps({"version": VERSION, "seed": args.seed, "config": CONFIG, "shards": shards}, indent=2))
    print(json.dumps({"out": str(out), "shards": shards}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
