"""Load one rank's shard: memory-map the file, verify it against the manifest, view tensors in place.

Everything here runs before any rendezvous, so a bad shard stops the pod with a message naming the
file and the problem instead of hanging its peers.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .format import DTYPES, MANIFEST_NAME, ST_DTYPE_INV, Manifest, rank_tensor_specs


class ShardError(RuntimeError):
    """A shard that does not match the manifest, the rank or the world size."""


@dataclass
class Shard:
    manifest: Manifest
    rank: int
    path: Path
    tensors: dict[str, torch.Tensor]
    vocab_start: int
    vocab_end: int
    nbytes: int
    _mm: mmap.mmap | None = None


def _hash_mapped(mm: mmap.mmap, size: int, algorithm: str, chunk: int = 8 << 20) -> str:
    import xxhash

    h = xxhash.xxh3_128() if algorithm == "xxh3_128" else hashlib.sha256()
    view = memoryview(mm)
    try:
        for off in range(0, size, chunk):
            h.update(view[off : off + chunk])
    finally:
        view.release()
    return h.hexdigest()


def read_manifest(model_dir: Path) -> Manifest:
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        raise ShardError(f"{path}: manifest not found")
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as e:
        raise ShardError(f"{path}: invalid manifest: {e}") from None


def load_shard(model_dir: str | os.PathLike, rank: int, world_size: int, verify_checksum: bool = True) -> Shard:
    model_dir = Path(model_dir)
    m = read_manifest(model_dir)
    mpath = model_dir / MANIFEST_NAME
    if m.tensor_parallel_size != world_size:
        raise ShardError(
            f"{mpath}: shards are for tensor-parallel size {m.tensor_parallel_size}, but the world size is {world_size}"
        )
    if len(m.files) != world_size or sorted(f.rank for f in m.files) != list(range(world_size)):
        raise ShardError(
            f"{mpath}: expected one file per rank 0..{world_size - 1}, manifest lists {[f.rank for f in m.files]}"
        )
    entry = next(f for f in m.files if f.rank == rank)
    path = model_dir / entry.path
    if not path.is_file():
        raise ShardError(f"{path}: shard file of rank {rank} not found")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ShardError(f"{path}: size is {size} bytes, manifest says {entry.bytes} (truncated or wrong file)")
    expected = {s.name: s for s in rank_tensor_specs(m.config, world_size, m.dtype, m.quantization)}
    for name, spec in expected.items():
        listed = entry.tensors.get(name)
        if listed is None or listed["dtype"] != spec.dtype or tuple(listed["shape"]) != spec.shape:
            raise ShardError(
                f"{mpath}: entry {name} of rank {rank} is {listed}, the config implies {spec.dtype} {list(spec.shape)}"
            )

    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    try:
        if hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
            mm.madvise(mmap.MADV_WILLNEED)
        if verify_checksum:
            algorithm, want = ("xxh3_128", entry.xxh3_128) if entry.xxh3_128 else ("sha256", entry.sha256)
            digest = _hash_mapped(mm, size, algorithm)
            if digest != want:
                raise ShardError(
                    f"{path}: {algorithm} {digest[:16]}... does not match the manifest's {want[:16]}... (corrupt shard)"
                )
        n = int.from_bytes(mm[:8], "little")
        if n <= 0 or 8 + n > size:
            raise ShardError(f"{path}: not a safetensors file (header length {n})")
        try:
            header = json.loads(mm[8 : 8 + n])
        except ValueError:
            raise ShardError(f"{path}: safetensors header is not valid JSON") from None
        header.pop("__metadata__", None)
        if set(header) != set(expected):
            missing = sorted(set(expected) - set(header))[:3]
            extra = sorted(set(header) - set(expected))[:3]
            raise ShardError(f"{path}: tensors differ from the manifest (missing {missing}, unexpected {extra})")
        start = 8 + n
        tensors: dict[str, torch.Tensor] = {}
        for name, info in header.items():
            spec = expected[name]
            dtype = ST_DTYPE_INV.get(info["dtype"])
            if dtype != spec.dtype or tuple(info["shape"]) != spec.shape:
                raise ShardError(
                    f"{path}: {name} is {info['dtype']} {info['shape']}, expected {spec.dtype} {list(spec.shape)}"
                )
            lo, hi = info["data_offsets"]
            if hi - lo != spec.nbytes or start + hi > size:
                raise ShardError(f"{path}: {name} has bad data offsets {lo}..{hi}")
            t = (
                torch.frombuffer(
                    mm, dtype=DTYPES[dtype], count=hi - lo and (hi - lo) // DTYPES[dtype].itemsize, offset=start + lo
                )
                if hi > lo
                else torch.empty(0, dtype=DTYPES[dtype])
            )
            tensors[name] = t.view(spec.shape)
    except BaseException:
        tensors = {}
        mm.close()
        raise
    return Shard(m, rank, path, tensors, entry.vocab_start, entry.vocab_end, size, mm)
