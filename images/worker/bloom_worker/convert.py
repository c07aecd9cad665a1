"""`bloom-convert SRC OUT --tensor-parallel N`: Hugging Face or DeepSpeed-Inference INT8 -> bloom-int8 shards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .chat_template import find_template
from .convert_hf import convert_hf
from .import_deepspeed import find_config, import_deepspeed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bloom-convert",
        description="Convert a Hugging Face BLOOM checkpoint (safetensors or .bin shards) or a "
        "DeepSpeed-Inference INT8 checkpoint (ds_inference_config.json) into bloom-int8 shards.",
    )
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument(
        "--tensor-parallel", "-t", type=int, required=True, help="number of ranks (must divide the head count)"
    )
    ap.add_argument(
        "--dtype", choices=("float16", "bfloat16"), default="float16", help="dtype of norms, biases and embeddings"
    )
    ap.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="group-wise scales over this many inputs (default: per output channel)",
    )
    ap.add_argument("--format", choices=("auto", "hf", "deepspeed"), default="auto")
    ap.add_argument(
        "--chat-template",
        type=Path,
        default=None,
        help="a Jinja2 chat template for /v1/chat/completions (default: the source's chat_template.jinja or"
        " tokenizer_config.json chat_template, else the worker's BLOOMZ-style default)",
    )
    args = ap.parse_args(argv)
    src: Path = args.src
    if not src.is_dir():
        print(f"bloom-convert: {src} is not a directory", file=sys.stderr)
        return 2
    kind = args.format
    if kind == "auto":
        kind = "deepspeed" if find_config(src) is not None else "hf"
    try:
        template = find_template(src, args.chat_template)
        if kind == "deepspeed":
            if args.group_size:
                raise ValueError("--group-size does not apply to a DeepSpeed import (its scales are kept)")
            import_deepspeed(src, args.out, args.tensor_parallel, args.dtype, template)
        else:
            convert_hf(src, args.out, args.tensor_parallel, args.dtype, args.group_size, template)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"bloom-convert: error: {msg}", file=sys.stderr)
        return 2
    print(f"bloom-convert: wrote {args.out} (TP={args.tensor_parallel}, {kind})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
