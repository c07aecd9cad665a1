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

# The worker test suite's tiny-model builder (random BLOOM + word-level tokenizer) and converter.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "worker"))
from worker_helpers import build_hf, convert  # noqa: E402

# 8 heads (TP 1/2/4/8 split whole heads); vocab 250 does not divide by 4 or 8 (padded vocab slices)
CONFIG = dict(vocab_size=250, hidden_size=64, n_layer=2, n_head=8)
VERSION = 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--tp", type=int, action="append", required=True, help="tensor-parallel size (repeatable)")
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args(argv)

    out: Path = args.out
    marker = out / "READY.json"
    if marker.exists():
        marker.unlink()
    out.mkdir(parents=True, exist_ok=True)
    hf = out / "hf"
    shutil.rmtree(hf, ignore_errors=True)
    hf.mkdir()
    build_hf(hf, args.seed, tokenizer=True, **CONFIG)
    shards = {}
    for tp in sorted(set(args.tp)):
        dst = out / f"tiny-bloom-int8-tp{tp}"
        shutil.rmtree(dst, ignore_errors=True)
        shards[tp] = str(convert(hf, dst, tp))
    marker.write_text(json.dumps({"version": VERSION, "seed": args.seed, "config": CONFIG, "shards": shards}, indent=2))
    print(json.dumps({"out": str(out), "shards": shards}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
