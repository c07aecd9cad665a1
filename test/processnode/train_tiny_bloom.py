"""Trains a tiny BLOOM on real text, offline and deterministic (dev/test tool, not shipped).

    .venv/bin/python test/processnode/train_tiny_bloom.py OUT [--steps N]
    .venv/bin/python test/processnode/train_tiny_bloom.py --digest      # the corpus's sha256 (cache key)

The corpus is text that is on every machine that ran the project's setup: the READMEs and metadata
texts of the npm and Python packages it installs, pinned by the lock files (test/processnode/corpus.json
lists the globs). A byte-level BPE
tokenizer (the `tokenizers` library, as BLOOM's own) is trained on it, then a BloomForCausalLM with
a few layers on CPU, seeded, for a fixed number of steps. Writes OUT (save_pretrained + tokenizer.json)
and OUT/training.json: the corpus digest, the loss curve, the held-out loss and the held-out prompts.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_SPEC = Path(__file__).with_name("corpus.json")
# 8 heads: TP 1/2/4/8 split whole heads; hidden 128 splits for TP=4
CONFIG = dict(vocab_size=1024, hidden_size=128, n_layer=4, n_head=8)
SEQ, BATCH, LR = 64, 16, 3e-3
STEPS, SEED, MAX_BYTES_PER_FILE = 600, 8, 60_000
HELD_OUT_FRACTION = 0.05
PROMPTS = 8


def corpus_files() -> list[Path]:
    spec = json.loads(CORPUS_SPEC.read_text())
    files: set[Path] = set()
    for pattern in spec["globs"]:
        files.update(Path(p) for p in glob.glob(str(ROOT / pattern)) if Path(p).is_file())
    return sorted(files)


def printable(text: str) -> str:
    """ASCII letters, digits, punctuation and newlines only: the model's script is Latin."""
    kept = "".join(c if (32 <= ord(c) < 127 or c == "\n") else " " for c in text)
    return "\n".join(" ".join(line.split()) for line in kept.splitlines() if line.strip())


def load_corpus(max_bytes_per_file: int) -> tuple[str, str]:
    """The corpus text and its sha256 (files in sorted order, each capped)."""
    parts = [printable(f.read_text(errors="replace")[:max_bytes_per_file]) for f in corpus_files()]
    text = "\n".join(p for p in parts if p)
    return text, hashlib.sha256(text.encode()).hexdigest()


def train_tokenizer(text: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text[i : i + 100_000] for i in range(0, len(text), 100_000)], trainer)
    return tok


def batches(ids, steps: int, gen):
    import torch

    for _ in range(steps):
        starts = torch.randint(0, len(ids) - SEQ - 1, (BATCH,), generator=gen)
        yield torch.stack([ids[s : s + SEQ] for s in starts.tolist()])


def held_out_windows(ids, windows: int):
    """`windows` evenly spaced SEQ-token windows of a token sequence, as a [windows, SEQ] tensor."""
    import torch

    step = max(1, (len(ids) - SEQ - 1) // windows)
    return torch.stack([torch.as_tensor(ids[s : s + SEQ]) for s in range(0, step * windows, step)])


def progress(step: int, steps: int, loss: float, started: float) -> None:
    """A bar redrawn in place on a terminal; a line every 10% in a log."""
    tty = sys.stdout.isatty()
    if not tty and step % max(1, steps // 10) and step != steps:
        return
    done = int(30 * step / steps)
    bar = "#" * done + "." * (30 - done)
    line = f"  training [{bar}] {step}/{steps} loss {loss:.3f} ({time.monotonic() - started:.0f}s)"
    print(f"\r{line}" if tty else line, end="" if tty and step < steps else "\n", flush=True)


def train(out: Path, steps: int = STEPS, seed: int = SEED, max_bytes_per_file: int = MAX_BYTES_PER_FILE) -> dict:
    """Trains and writes the model into `out`; returns the training report."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(seed)
    torch.set_num_threads(2)  # fixed, so the float reductions (and so the weights) do not depend on the machine
    text, digest = load_corpus(max_bytes_per_file)
    if len(text) < 100_000:
        raise SystemExit(
            f"corpus too small ({len(text)} characters): run the project's setup first (npm packages, .venv)"
        )
    tok = train_tokenizer(text, CONFIG["vocab_size"])
    ids = torch.tensor(tok.encode(text).ids, dtype=torch.int64)
    split = int(len(ids) * (1 - HELD_OUT_FRACTION))
    train_ids, held_ids = ids[:split], ids[split:]

    config = BloomConfig(**CONFIG, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model = BloomForCausalLM(config)
    uniform = math.log(CONFIG["vocab_size"])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    curve: list[float] = []
    started = time.monotonic()
    for step, x in enumerate(batches(train_ids, steps, gen), 1):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        curve.append(round(loss.item(), 4))
        progress(step, steps, curve[-1], started)
    model.eval()
    with torch.no_grad():
        chunks = held_out_windows(held_ids, 32)
        held_out = float(model(input_ids=chunks, labels=chunks).loss)
    print(f"  held-out loss {held_out:.3f} (a uniform model: {uniform:.3f})", flush=True)

    # held-out prompts: the first words of 8 evenly spaced held-out prose lines
    prose = [ln.split() for ln in tok.decode(held_ids.tolist()).splitlines()[1:]]
    prose = [w for w in prose if len(w) >= 8 and w[0][:1].isupper() and sum(x.isalpha() for x in w) >= 6]
    prompts = [" ".join(prose[i * len(prose) // PROMPTS][:6]) for i in range(PROMPTS)]

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save(str(out / "tokenizer.json"))
    report = {
        "corpus_sha256": digest,
        "corpus_characters": len(text),
        "tokens": len(ids),
        "config": CONFIG,
        "steps": steps,
        "seconds": round(time.monotonic() - started, 1),
        "loss_curve": curve,
        "held_out_loss": held_out,
        "uniform_loss": uniform,
        "held_out_prompts": prompts,
        "held_out_ids": held_ids.tolist(),
    }
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--digest", action="store_true", help="print the corpus's sha256 and exit")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    if args.digest:
        print(load_corpus(MAX_BYTES_PER_FILE)[1])
        return 0
    if args.out is None:
        ap.error("OUT is required")
    train(args.out, args.steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
