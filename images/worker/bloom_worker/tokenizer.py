"""Optional tokenizer: `tokenizer.json` in the model directory, read with the `tokenizers` library."""

from __future__ import annotations

from pathlib import Path


class Tokenizer:
    def __init__(self, path: Path):
        from tokenizers import Tokenizer as HFTokenizer

        self.tok = HFTokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def token(self, token_id: int) -> str:
        """The vocabulary's string for an id ("" when it has none): bos/eos for chat templates."""
        return self.tok.id_to_token(token_id) or ""


def load_tokenizer(model_dir: Path) -> Tokenizer | None:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        return Tokenizer(path)
    except ImportError:
        return None
