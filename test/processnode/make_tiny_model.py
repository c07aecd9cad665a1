"""The tiny BLOOMs of the process-node e2e test, `npm run demo` and the worker's trained-model tests
(dev/test tool, not shipped), built once and cached.

    .venv/bin/python test/processnode/make_tiny_model.py --tp 4 --tp 1 [--trained] [--cache-base DIR]

builds, unless the cache has it, DIR/tiny-bloom[-trained]-<key>-tp<sizes>/ holding hf/ (a Hugging Face
BloomForCausalLM: random with a word-level tokenizer, or with --trained the BLOOM train_tiny_bloom.py
trains on real text with a byte-level BPE tokenizer), tiny-bloom-int8-tp<N>/ for every --tp (the
project's converter, `bloom-convert`) and READY.json (the marker). The key hashes the sources that
decide the bytes (and the corpus, for --trained). The last line printed is JSON: dir, shards, cached.
DIR defaults to $BLOOM_DEMO_CACHE or ~/.cache/bloom-operator/demo. Deterministic: same seed, same model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# The worker test suite's tiny-model builder (random BLOOM + word-level tokenizer) and converter.
sys.path.insert(0, str(ROOT / "test" / "python" / "worker"))
sys.path.insert(0, str(HERE))
import train_tiny_bloom  # noqa: E402

from worker_helpers import build_hf, convert  # noqa: E402

# 8 heads (TP 1/2/4/8 split whole heads); vocab 250 does not divide by 4 or 8 (padded vocab slices)
CONFIG = dict(vocab_size=250, hidden_size=64, n_layer=2, n_head=8)
VERSION = 2
SOURCES = [
    "test/processnode/make_tiny_model.py",
    "test/python/worker/worker_helpers.py",
    "images/worker/bloom_worker/convert.py",
    "images/worker/bloom_worker/convert_hf.py",
    "images/worker/bloom_worker/format.py",
]
TRAINED_SOURCES = ["test/processnode/train_tiny_bloom.py", "test/processnode/corpus.json"]


def default_cache_base() -> Path:
    return Path(os.environ.get("BLOOM_DEMO_CACHE") or Path.home() / ".cache" / "bloom-operator" / "demo")


def cache_key(trained: bool, seed: int) -> str:
    h = hashlib.sha256(f"{VERSION}/{trained}/{seed}".encode())
    for f in SOURCES + (TRAINED_SOURCES if trained else []):
        h.update((ROOT / f).read_bytes())
    if trained:
        h.update(train_tiny_bloom.load_corpus(train_tiny_bloom.MAX_BYTES_PER_FILE)[1].encode())
    return h.hexdigest()[:12]


def ensure(tps: list[int], trained: bool = False, base: Path | None = None, seed: int = 8) -> dict:
    """The model and its shards per TP size, built unless cached: {dir, hf, shards, cached}."""
    sizes = sorted(set(tps))
    out = (base or default_cache_base()) / (
        f"tiny-bloom{'-trained' if trained else ''}-{cache_key(trained, seed)}-tp{'-'.join(map(str, sizes))}"
    )
    shards = {tp: str(out / f"tiny-bloom-int8-tp{tp}") for tp in sizes}
    result = {"dir": str(out), "hf": str(out / "hf"), "shards": shards, "cached": True}
    marker = out / "READY.json"
    if marker.exists():
        return result
    out.mkdir(parents=True, exist_ok=True)
    hf = out / "hf"
    shutil.rmtree(hf, ignore_errors=True)
    if trained:
        train_tiny_bloom.train(hf, seed=seed)
    else:
        hf.mkdir()
        build_hf(hf, seed, tokenizer=True, **CONFIG)
    for tp, dst in shards.items():
        shutil.rmtree(dst, ignore_errors=True)
        convert(hf, Path(dst), tp)
    config = train_tiny_bloom.CONFIG if trained else CONFIG
    marker.write_text(json.dumps({"version": VERSION, "seed": seed, "trained": trained, "config": config}, indent=2))
    return {**result, "cached": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tp", type=int, action="append", required=True, help="tensor-parallel size (repeatable)")
    ap.add_argument("--trained", action="store_true", help="train on real text instead of random weights")
    ap.add_argument("--cache-base", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args(argv)
    print(json.dumps(ensure(args.tp, args.trained, args.cache_base, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
