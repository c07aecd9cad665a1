"""UTF-8-correct streaming with a byte-level BPE tokenizer (BLOOM's kind, built here with `tokenizers`
on a corpus of CJK, emoji and English): the incremental detokenizer and stop strings on token sequences
that split characters, then a real TP=2 group serving a model converted with that tokenizer, whose
streamed text equals its non-streamed text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api_helpers import api_group, chunks, post
from bloom_worker.detokenize import REPLACEMENT, Detokenizer, StopText, held_suffix
from worker_helpers import Group, build_hf, convert

CORPUS = [
    "数据科学 is data science; 机器学习 is machine learning 😀",
    "大型语言模型 large language models 🚀🌸 多语言 multilingual",
    "こんにちは世界 hello world 👋 안녕하세요 🍣",
    "emoji 😀😃😄 and 汉字 and ÄÖÜ äöü ß",
]
VOCAB = 320  # small: most CJK characters and emoji stay split into byte tokens


@pytest.fixture(scope="module")
def bpe(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    return tok


def split_characters(tok, ids: list[int]) -> bool:  # noqa: ANN001
    """Some token of `ids` holds only part of a character."""
    return any(REPLACEMENT in tok.decode([i]) for i in ids)


def naive(tok, ids: list[int]) -> str:  # noqa: ANN001
    """What the old server streamed: decode(seen)[len(text so far):]."""
    out, text = "", ""
    for n in range(1, len(ids) + 1):
        now = tok.decode(ids[:n])
        out, text = out + now[len(text) :], now
    return out


@pytest.mark.parametrize("text", ["数据 ok 😀", *CORPUS])
def test_deltas_never_hold_a_partial_character(bpe, text: str) -> None:  # noqa: ANN001
    ids = bpe.encode(text).ids
    assert split_characters(bpe, ids), "the tokenizer must split some character across tokens"
    d = Detokenizer(lambda x: bpe.decode(x))
    deltas = [d.add(i) for i in ids]
    deltas.append(d.flush())
    assert "".join(deltas) == text == bpe.decode(ids)
    assert not any(REPLACEMENT in x for x in deltas)
    assert naive(bpe, ids) != text, "the naive streaming garbles it (the case this guards)"


def test_incomplete_bytes_at_the_end_are_flushed_as_a_full_decode_gives_them(bpe) -> None:  # noqa: ANN001
    ids = bpe.encode("ok 😀").ids[:-1]  # the emoji cut short
    d = Detokenizer(lambda x: bpe.decode(x))
    text = "".join(d.add(i) for i in ids)
    assert REPLACEMENT not in text
    assert text + d.flush() == bpe.decode(ids) and bpe.decode(ids).endswith(REPLACEMENT)


def test_stop_strings_across_deltas() -> None:
    assert held_suffix("abc ST", ["STOP"]) == 2 and held_suffix("abc", ["STOP"]) == 0
    s = StopText(["STOP", "数据"])
    out = [s.add(x) for x in ["hello S", "T", "O", "nly ", "数", "据 more"]]
    assert out == ["hello ", "", "", "STOnly ", "", ""] and s.stopped and s.text == "hello STOnly "
    s = StopText(["END"])
    assert [s.add("a EN"), s.flush()] == ["a ", "EN"] and not s.stopped  # no stop: the tail comes at the end
    s = StopText(["xx"])
    assert s.add("axxbxx") == "a" and s.stopped and s.add("more") == ""


@pytest.fixture(scope="module")
def served(bpe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Group, str]]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("bpe")
    src = build_hf(work / "hf", 5, False, vocab_size=bpe.get_vocab_size(), hidden_size=64, n_layer=2, n_head=4)
    bpe.save(str(src / "tokenizer.json"))
    shards = convert(src, work / "tp2", 2)
    g, key = api_group(shards, 2, work / "group", nproc=2)
    try:
        yield g.wait_ready(120), key
    finally:
        g.stop()


def test_streamed_text_equals_the_whole_text_for_cjk_and_emoji(bpe, served: tuple[Group, str]) -> None:  # noqa: ANN001
    g, key = served
    split = 0
    for prompt in ["数据科学 😀", "大型语言模型 🚀", "こんにちは 👋"]:
        body = {"prompt": prompt, "max_tokens": 40, "temperature": 1.0, "seed": 11, "n": 2, "ignore_eos": True}
        whole = post(g, key, "/v1/completions", body)
        assert whole.status_code == 200, whole.text
        streamed = chunks(post(g, key, "/v1/completions", {**body, "stream": True}, stream=True))
        for choice in whole.json()["choices"]:
            ids = choice["token_ids"]
            parts = [c["choices"][0]["text"] for c in streamed if c["choices"][0]["index"] == choice["index"]]
            assert "".join(parts) == choice["text"] == bpe.decode(ids)
            # (a random model also emits invalid byte sequences: those stay U+FFFD in both, as in a full decode)
            split += split_characters(bpe, ids) and any(ord(ch) > 0x2E80 and ch != REPLACEMENT for ch in choice["text"])
        chat = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 24, "temperature": 1.0, "seed": 3}
        whole_chat = post(g, key, "/v1/chat/completions", chat).json()["choices"][0]["message"]["content"]
        deltas = chunks(post(g, key, "/v1/chat/completions", {**chat, "stream": True}, stream=True))
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in deltas) == whole_chat
    assert split > 0, "no answer split a CJK character or an emoji across tokens: the test shows nothing"
    tgi = post(
        g,
        key,
        "/generate",
        {"inputs": "😀", "parameters": {"max_new_tokens": 30, "seed": 1, "do_sample": True, "stop_at_eos": False}},
    ).json()
    assert tgi["generated_text"] == bpe.decode(tgi["output_ids"])
