"""The `bloom-int8` shard format: a manifest plus one safetensors file per tensor-parallel rank.

Directory layout::

    bloom-manifest.json            this module's `Manifest`
    rank-00-of-08.safetensors      rank 0's tensors (see `rank_tensor_specs`)
    ...
    tokenizer.json (optional)      copied from the source checkpoint

Every rank file is a plain safetensors file (readable by `safetensors.safe_open`), written so that
every tensor is naturally aligned (fp32, then 16-bit, then int8 tensors, header padded to 8 bytes):
the loader can map the file and view tensors in place.

INT8 scheme: symmetric, no zero point, w ~= q * scale with q in [-127, 127]. The scale is per output
channel ([out], fp32) or, with a group size G, per output channel and group of G inputs ([out, in/G]).
Quantization is done on the full (unsplit) matrix and then split, so the int8 codes and scales of
every TP size are the same numbers: TP=N computes exactly what TP=1 computes, up to fp32 summation
order. A rank's scale applies to its own slice: for row-parallel matrices (dense, dense_4h_to_h) the
converter stores the full-row scales on every rank; the DeepSpeed importer keeps the per-source-rank
scales of that checkpoint (each rank's partial sum is exact either way).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

FORMAT = "bloom-int8"
FORMAT_VERSION = 1
MANIFEST_NAME = "bloom-manifest.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

QUANTIZED = ("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
COLUMN_PARALLEL = ("self_attention.query_key_value", "mlp.dense_h_to_4h")
ROW_PARALLEL = ("self_attention.dense", "mlp.dense_4h_to_h")
LAYER_NORMS = ("input_layernorm", "post_attention_layernorm")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
}
ST_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8"}
ST_DTYPE_INV = {v: k for k, v in ST_DTYPE.items()}
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def dtype_name(dtype: torch.dtype) -> str:
    for name, dt in DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"unsupported dtype {dtype}")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    n_layer: int
    n_head: int
    layer_norm_epsilon: float = 1e-5
    apply_residual_connection_post_layernorm: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 3

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_head

    @staticmethod
    def from_hf(cfg: dict) -> ModelConfig:
        """From a Hugging Face BLOOM config.json (old and new key names)."""

        def pick(*names: str, default=None):
            for n in names:
                if n in cfg and cfg[n] is not None:
                    return cfg[n]
            if default is None:
                raise ValueError(f"config.json lacks {names[0]}")
            return default

        return ModelConfig(
            vocab_size=int(pick("vocab_size")),
            hidden_size=int(pick("hidden_size", "n_embed")),
            n_layer=int(pick("n_layer", "num_hidden_layers")),
            n_head=int(pick("n_head", "num_attention_heads")),
            layer_norm_epsilon=float(pick("layer_norm_epsilon", default=1e-5)),
            apply_residual_connection_post_layernorm=bool(cfg.get("apply_residual_connection_post_layernorm", False)),
            bos_token_id=int(pick("bos_token_id", default=1)),
            eos_token_id=int(pick("eos_token_id", default=2)),
            pad_token_id=int(pick("pad_token_id", default=3)),
        )


@dataclass(frozen=True)
class Quantization:
    scheme: str = "int8-symmetric"
    granularity: str = "per-channel"  # or "group"
    group_size: int | None = None
    scale_dtype: str = "float32"
    qmax: int = 127
    weights: tuple[str, ...] = QUANTIZED


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = ITEMSIZE[self.dtype]
        for s in self.shape:
            n *= s
        return n


@dataclass
class RankFile:
    rank: int
    path: str
    bytes: int
    sha256: str
    vocab_start: int
    vocab_end: int
    tensors: dict[str, dict] = field(default_factory=dict)  # name -> {"dtype", "shape"}
    xxh3_128: str = ""  # what the loader verifies (memory-bandwidth fast); sha256 is for tools like sha256sum


@dataclass
class Manifest:
    config: ModelConfig
    tensor_parallel_size: int
    dtype: str
    quantization: Quantization
    vocab_padded_size: int
    files: list[RankFile]
    tokenizer: bool = False
    source: dict = field(default_factory=dict)
    chat_template: str | None = None  # Jinja2, for /v1/chat/completions (chat_template.py)
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        d["quantization"]["weights"] = list(self.quantization.weights)
        return json.dumps(d, indent=2, sort_keys=False) + "\n"

    @staticmethod
    def from_json(text: str) -> Manifest:
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError(f"format is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"version is {d.get('version')!r}, this worker reads {FORMAT_VERSION}")
        q = d["quantization"]
        q["weights"] = tuple(q["weights"])
        return Manifest(
            config=ModelConfig(**d["config"]),
            tensor_parallel_size=int(d["tensor_parallel_size"]),
            dtype=d["dtype"],
            quantization=Quantization(**q),
            vocab_padded_size=int(d["vocab_padded_size"]),
            files=[RankFile(**f) for f in d["files"]],
            tokenizer=bool(d.get("tokenizer", False)),
            source=d.get("source", {}),
            chat_template=d.get("chat_template"),
        )

    @staticmethod
    def read(model_dir: str | os.PathLike) -> Manifest:
        return Manifest.from_json((Path(model_dir) / MANIFEST_NAME).read_text())


def rank_file_name(rank: int, world: int) -> str:
    return f"rank-{rank:02d}-of-{world:02d}.safetensors"


def check_tp_size(cfg: ModelConfig, tp: int) -> None:
    if tp < 1:
        raise ValueError(f"tensor-parallel size must be >= 1, got {tp}")
    if cfg.n_head % tp != 0:
        raise ValueError(
            f"tensor-parallel size {tp} does not divide the head count {cfg.n_head}: "
            f"each rank must hold whole attention heads"
        )


def padded_vocab(vocab: int, tp: int) -> int:
    """The vocab is split in equal contiguous slices; the last slice is padded with zero rows."""
    return -(-vocab // tp) * tp


def rank_tensor_specs(cfg: ModelConfig, tp: int, dtype: str, quant: Quantization) -> list[TensorSpec]:
    """The tensors of one rank's file, in file order (fp32 scales, then 16-bit, then int8)."""
    check_tp_size(cfg, tp)
    h = cfg.hidden_size
    per_rank_vocab = padded_vocab(cfg.vocab_size, tp) // tp
    shapes = {  # name -> (out, in) of this rank's slice
        "self_attention.query_key_value": (3 * h // tp, h),
        "self_attention.dense": (h, h // tp),
        "mlp.dense_h_to_4h": (4 * h // tp, h),
        "mlp.dense_4h_to_h": (h, 4 * h // tp),
    }
    bias_len = {
        "self_attention.query_key_value": 3 * h // tp,
        "self_attention.dense": h,
        "mlp.dense_h_to_4h": 4 * h // tp,
        "mlp.dense_4h_to_h": h,
    }
    scales: list[TensorSpec] = []
    halves: list[TensorSpec] = [
        TensorSpec("word_embeddings.weight", dtype, (per_rank_vocab, h)),
        TensorSpec("word_embeddings_layernorm.weight", dtype, (h,)),
        TensorSpec("word_embeddings_layernorm.bias", dtype, (h,)),
        TensorSpec("ln_f.weight", dtype, (h,)),
        TensorSpec("ln_f.bias", dtype, (h,)),
    ]
    ints: list[TensorSpec] = []
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        for ln in LAYER_NORMS:
            halves += [TensorSpec(p + ln + ".weight", dtype, (h,)), TensorSpec(p + ln + ".bias", dtype, (h,))]
        for name, (out, inp) in shapes.items():
            ints.append(TensorSpec(p + name + ".weight", "int8", (out, inp)))
            halves.append(TensorSpec(p + name + ".bias", dtype, (bias_len[name],)))
            if quant.granularity == "group":
                g = int(quant.group_size or 0)
                if g <= 0 or inp % g:
                    raise ValueError(f"group size {g} does not divide the input width {inp} of {name} at TP={tp}")
                scales.append(TensorSpec(p + name + ".scale", quant.scale_dtype, (out, inp // g)))
            else:
                scales.append(TensorSpec(p + name + ".scale", quant.scale_dtype, (out,)))
    return scales + halves + ints


# --- quantization -----------------------------------------------------------------------------


def quantize(w: torch.Tensor, group_size: int | None = None, qmax: int = 127) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8: w [out, in] -> (q int8 [out, in], scale fp32 [out] or [out, in/G]).

    Rounding error per weight is at most scale/2 = absmax/(2*qmax) of its channel (or group).
    """
    w = w.to(torch.float32)
    out, inp = w.shape
    wg = w if group_size is None else w.reshape(out, inp // group_size, group_size)
    absmax = wg.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
    q = torch.round(wg / scale).clamp_(-qmax, qmax).to(torch.int8)
    return q.reshape(out, inp), scale.squeeze(-1)


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    out, inp = q.shape
    if scale.dim() == 1:
        return q.to(torch.float32) * scale.to(torch.float32)[:, None]
    g = inp // scale.shape[1]
    return (q.to(torch.float32).view(out, -1, g) * scale.to(torch.float32)[:, :, None]).view(out, inp)


def split_rows(t: torch.Tensor, tp: int, rank: int) -> torch.Tensor:
    n = t.shape[0] // tp
    return t[rank * n : (rank + 1) * n]


def split_cols(t: torch.Tensor, tp: int, rank: int) -> torch.Tensor:
    n = t.shape[1] // tp
    return t[:, rank * n : (rank + 1) * n]


# --- writing ----------------------------------------------------------------------------------


class ShardWriter:
    """Writes one rank file whose header is fixed up front, so tensors can arrive in any order.

    Never holds more than the tensor being written: each tensor goes straight to its offset.
    """

    def __init__(self, path: Path, specs: Iterable[TensorSpec]):
        self.path = path
        self.specs = {s.name: s for s in specs}
        header: dict[str, dict] = {}
        offset = 0
        self.offsets: dict[str, int] = {}
        for s in self.specs.values():
            header[s.name] = {
                "dtype": ST_DTYPE[s.dtype],
                "shape": list(s.shape),
                "data_offsets": [offset, offset + s.nbytes],
            }
            self.offsets[s.name] = offset
            offset += s.nbytes
        header["__metadata__"] = {"format": FORMAT}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)
        self.data_start = 8 + len(raw)
        self.total = self.data_start + offset
        self.written: set[str] = set()
        self.f = open(path, "wb")
        self.f.write(len(raw).to_bytes(8, "little"))
        self.f.write(raw)
        self.f.truncate(self.total)

    def write(self, name: str, t: torch.Tensor) -> None:
        s = self.specs.get(name)
        if s is None:
            raise KeyError(f"{self.path.name}: unexpected tensor {name}")
        if tuple(t.shape) != s.shape or t.dtype != DTYPES[s.dtype]:
            raise ValueError(f"{self.path.name}: {name} is {tuple(t.shape)} {t.dtype}, expected {s.shape} {s.dtype}")
        data = t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes()
        self.f.seek(self.data_start + self.offsets[name])
        self.f.write(data)
        self.written.add(name)

    def close(self) -> tuple[int, str, str]:
        missing = set(self.specs) - self.written
        if missing:
            raise ValueError(f"{self.path.name}: tensors never written: {sorted(missing)[:5]}")
        self.f.close()
        return (self.total, *checksums(self.path))


def checksums(path: Path, chunk: int = 16 << 20) -> tuple[str, str]:
    """(sha256, xxh3_128) of a file, in one pass."""
    import xxhash

    h, x = hashlib.sha256(), xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            x.update(view[:n])
    return h.hexdigest(), x.hexdigest()
