"""Chat templates: carried by the shard manifest (bloom-convert --chat-template FILE, or the source's
tokenizer_config.json), rendered sandboxed; and the Prometheus histograms the API and engine observe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bloom_worker.chat_template import DEFAULT_TEMPLATE, ChatTemplate
from bloom_worker.convert import main as convert_main
from bloom_worker.format import Manifest
from bloom_worker.metrics import BUCKETS, Metrics
from bloom_worker.validate import ApiError

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Translate to French: cat"},
    {"role": "assistant", "content": "chat"},
    {"role": "user", "content": "dog"},
]
ALTERNATE = (
    "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('roles must alternate') }}{% endif %}<{{ m.role }}>{{ m.content }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_the_default_template_is_bloomz_style() -> None:
    text = ChatTemplate(None, "<s>", "</s>").render(MESSAGES)
    assert text == "Be brief.\n\nUser: Translate to French: cat\nAssistant: chat\nUser: dog\nAssistant:"
    assert ChatTemplate(None, "", "").source == DEFAULT_TEMPLATE


def test_a_template_refusal_and_the_sandbox_are_400s() -> None:
    t = ChatTemplate(ALTERNATE, "<s>", "</s>")
    assert t.render(MESSAGES[1:3]) == "<user>Translate to French: cat</s><assistant>chat</s><assistant>"
    with pytest.raises(ApiError, match="roles must alternate") as e:
        t.render(MESSAGES)
    assert e.value.status == 400 and e.value.param == "messages"
    escape = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ApiError):
        ChatTemplate(escape, "", "").render(MESSAGES)


def test_the_converter_puts_the_template_in_the_manifest(
    model_a: Path, shards_a: dict[int, Path], tmp_path: Path
) -> None:
    assert Manifest.read(shards_a[1]).chat_template is None  # the source has none: the worker's default
    src = tmp_path / "src"
    shutil.copytree(model_a, src)
    (src / "tokenizer_config.json").write_text(json.dumps({"chat_template": ALTERNATE}))
    assert convert_main([str(src), str(tmp_path / "from-config"), "-t", "1"]) == 0
    assert Manifest.read(tmp_path / "from-config").chat_template == ALTERNATE
    flag = tmp_path / "chat.jinja"
    flag.write_text("{% for m in messages %}{{ m.content }}|{% endfor %}")
    assert convert_main([str(src), str(tmp_path / "from-flag"), "-t", "1", "--chat-template", str(flag)]) == 0
    assert Manifest.read(tmp_path / "from-flag").chat_template == flag.read_text()
    flag.write_text("{% for m in messages %}")  # does not compile
    assert convert_main([str(src), str(tmp_path / "bad"), "-t", "1", "--chat-template", str(flag)]) == 2
    assert not (tmp_path / "bad" / "bloom-manifest.json").exists()


def test_histograms_are_cumulative_buckets_with_sum_and_count() -> None:
    m = Metrics()
    for v in (0.003, 0.2, 0.2, 400.0):
        m.observe("bloom_worker_request_seconds", v, {"route": "/generate"})
    text = m.render()
    assert "# TYPE bloom_worker_request_seconds histogram" in text
    lines = [line for line in text.splitlines() if line.startswith("bloom_worker_request_seconds_bucket")]
    assert len(lines) == len(BUCKETS) + 1 and lines[-1].endswith('le="+Inf",route="/generate"} 4')
    counts = [float(line.split()[-1]) for line in lines]
    assert counts == sorted(counts) and counts[0] == 0 and counts[BUCKETS.index(0.005)] == 1
    assert counts[BUCKETS.index(0.25)] == 3 and counts[-2] == 3  # 400 s only in +Inf
    assert 'bloom_worker_request_seconds_count{route="/generate"} 4' in text
    assert 'bloom_worker_request_seconds_sum{route="/generate"} 400.40' in text
    assert text.count("# TYPE bloom_worker_request_seconds ") == 1
