"""Greedy completion of a prompt by transformers in fp32 on a Hugging Face BLOOM checkpoint: the
reference `npm run demo` prints beside the worker's answer (dev/test tool, not shipped).

    .venv/bin/python test/processnode/hf_complete.py HF_DIR PROMPT MAX_NEW_TOKENS

prints {"text", "token_ids"}: the new tokens (greedy, stopping at EOS, as the worker's
/v1/completions with temperature 0).
"""

from __future__ import annotations

import json
import sys

import torch
from tokenizers import Tokenizer
from transformers import BloomForCausalLM


def main(argv: list[str]) -> int:
    hf, prompt, max_new = argv[0], argv[1], int(argv[2])
    tok = Tokenizer.from_file(f"{hf}/tokenizer.json")
    model = BloomForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    ids = torch.tensor([tok.encode(prompt).ids])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=model.config.eos_token_id)
    new = out[0, ids.shape[1] :].tolist()
    if model.config.eos_token_id in new:
        new = new[: new.index(model.config.eos_token_id)]
    print(json.dumps({"text": tok.decode(new), "token_ids": new}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
