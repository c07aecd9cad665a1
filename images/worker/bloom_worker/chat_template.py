"""Chat templates: Jinja2 (sandboxed, as transformers renders them) over `messages`, with
`add_generation_prompt`, `bos_token` and `eos_token`.

The shard manifest carries the template (`chat_template`): `bloom-convert` takes it from
`--chat-template FILE`, else the source's `chat_template.jinja`, else its `tokenizer_config.json`.
Without one the worker uses `DEFAULT_TEMPLATE`, BLOOMZ style: BLOOMZ was tuned on plain prompts, so the
turns are written out as `User: ...` / `Assistant: ...` lines, a system message first as a paragraph,
and the answer follows `Assistant:`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .validate import ApiError

DEFAULT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}User: {{ m.content }}\n"
    "{% else %}Assistant: {{ m.content }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


class ChatTemplate:
    def __init__(self, source: str | None, bos_token: str, eos_token: str):
        self.source = source if source is not None else DEFAULT_TEMPLATE
        self.template = compile_template(self.source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self.template.render(
                messages=messages, add_generation_prompt=True, bos_token=self.bos_token, eos_token=self.eos_token
            )
        except jinja2.TemplateError as e:  # raise_exception (e.g. roles must alternate), a sandbox refusal
            raise ApiError(400, f"the model's chat template refused the messages: {e}", "messages") from None


def find_template(src: Path, override: Path | None) -> str | None:
    """The template a converted model carries (checked to compile)."""
    if override is not None:
        source: str | None = override.read_text()
    elif (src / "chat_template.jinja").is_file():
        source = (src / "chat_template.jinja").read_text()
    elif (src / "tokenizer_config.json").is_file():
        source = from_tokenizer_config(json.loads((src / "tokenizer_config.json").read_text()))
    else:
        source = None
    if source is not None:
        try:
            compile_template(source)
        except jinja2.TemplateError as e:
            raise ValueError(f"the chat template does not compile: {e}") from None
    return source


def from_tokenizer_config(cfg: dict) -> str | None:
    """`chat_template`: a string, or a list of named templates of which "default" is the one."""
    value = cfg.get("chat_template")
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return value if isinstance(value, str) else None
