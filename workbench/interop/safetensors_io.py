"""Minimal, validating safetensors reader/writer on numpy (bfloat16 via ml_dtypes; no torch).

The format: 8-byte little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw buffer.
The `safetensors` numpy API cannot return bfloat16 arrays, so reading is done here; files written here
load in `safetensors` (numpy and torch) and `transformers`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import ml_dtypes
import numpy as np

from workbench.interop.errors import CheckpointError

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_MAX_HEADER = 100_000_000


class SafetensorsFile:
    """Validated header of one .safetensors file; tensors are read on demand."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
        self.metadata: dict[str, str] = {}
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise ValueError("file shorter than the 8-byte header length")
                (n,) = struct.unpack("<Q", head)
                if n > _MAX_HEADER or 8 + n > size:
                    raise ValueError(f"header length {n} exceeds the file size {size} (truncated?)")
                header = json.loads(f.read(n))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{self.path}: not a readable safetensors file: {e}") from e
        if not isinstance(header, dict):
            raise CheckpointError(f"{self.path}: safetensors header is not a JSON object")
        self._data_start, buffer_len = 8 + n, size - 8 - n
        self.metadata = header.pop("__metadata__", None) or {}
        spans = []
        for name, info in header.items():
            try:
                dtype = _DTYPES[info["dtype"]]
                shape = tuple(int(d) for d in info["shape"])
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{self.path}: bad header entry for tensor {name!r}: {e!r}") from e
            if end - begin != math.prod(shape) * dtype.itemsize or begin < 0:
                raise CheckpointError(f"{self.path}: tensor {name!r} has inconsistent byte offsets")
            if end > buffer_len:
                raise CheckpointError(f"{self.path}: tensor {name!r} ends at byte {end} but the data buffer has "
                                      f"{buffer_len} bytes (file truncated?)")
            self.entries[name] = (dtype, shape, begin, end)
            spans.append((begin, end))
        covered = 0
        for begin, end in sorted(spans):
            if begin != covered:
                raise CheckpointError(f"{self.path}: tensor data overlaps or leaves gaps at byte {begin}")
            covered = end
        if covered != buffer_len:
            raise CheckpointError(f"{self.path}: {buffer_len - covered} trailing bytes after the tensor data")

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def read(self, name: str) -> np.ndarray:
        dtype, shape, begin, end = self.entries[name]
        try:
            with open(self.path, "rb") as f:
                f.seek(self._data_start + begin)
                buf = f.read(end - begin)
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read tensor {name!r}: {e}") from e
        if len(buf) != end - begin:
            raise CheckpointError(f"{self.path}: tensor {name!r} is truncated")
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()


class CheckpointReader:
    """All tensors of a checkpoint directory: `model.safetensors`, an index + shards, or any *.safetensors."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CheckpointError(f"{self.directory}: not a checkpoint directory")
        index = self.directory / INDEX_NAME
        problems: list[str] = []
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                if not isinstance(weight_map, dict):
                    raise TypeError("weight_map is not an object")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: unreadable shard index: {e!r}") from e
            names = sorted(set(weight_map.values()))
            missing_files = [n for n in names if not (self.directory / n).is_file()]
            if missing_files:
                raise CheckpointError(f"{index}: shard files missing: {', '.join(missing_files)}")
        else:
            weight_map = None
            names = sorted(p.name for p in self.directory.glob("*.safetensors"))
            if not names:
                raise CheckpointError(f"{self.directory}: no *.safetensors files (only safetensors is supported)")
        self.files = {n: SafetensorsFile(self.directory / n) for n in names}
        self.where: dict[str, str] = {}
        for fname, f in self.files.items():
            for key in f.entries:
                if key in self.where:
                    problems.append(f"tensor {key!r} appears in both {self.where[key]} and {fname}")
                self.where[key] = fname
        if weight_map is not None:
            for key, fname in sorted(weight_map.items()):
                if self.where.get(key) != fname:
                    problems.append(f"index maps {key!r} to {fname} but that file does not hold it")
            for key in sorted(set(self.where) - set(weight_map)):
                problems.append(f"tensor {key!r} in {self.where[key]} is not listed in the index")
        if problems:
            raise CheckpointError(f"{self.directory}: inconsistent shards:\n  " + "\n  ".join(problems))

    def keys(self) -> list[str]:
        return sorted(self.where)

    def shape(self, key: str) -> tuple[int, ...]:
        return self.files[self.where[key]].shape(key)

    def read(self, key: str) -> np.ndarray:
        return self.files[self.where[key]].read(key)


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of one file (validated; bfloat16 comes back as ml_dtypes.bfloat16)."""
    f = SafetensorsFile(path)
    return {name: f.read(name) for name in f.entries}


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise tensors (C order, little-endian) to safetensors bytes."""
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    chunks, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _NAMES:
            raise CheckpointError(f"tensor {name!r}: dtype {arr.dtype} cannot be written to safetensors")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def write_safetensors(tensors: Mapping[str, np.ndarray], path: str | os.PathLike,
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write one safetensors file (atomically: temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(safetensors_bytes(tensors, metadata))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shard(tensors: Mapping[str, np.ndarray], max_shard_bytes: int | None) -> list[dict[str, np.ndarray]]:
    """Split tensors (in name order) into groups of at most `max_shard_bytes` (a larger tensor gets its own)."""
    if max_shard_bytes is None:
        return [dict(tensors)]
    groups: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(tensors):
        n = tensors[name].nbytes
        if groups[-1] and size + n > max_shard_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = tensors[name]
        size += n
    return groups


def write_checkpoint_dir(directory: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                         json_files: Mapping[str, dict], max_shard_bytes: int | None = None) -> None:
    """Write config-like JSON files and the weights (one file, or shards + index) into `directory`.

    Everything is first written into a temporary directory next to the target. A new target is created by
    one rename; into an existing directory each file is moved with `os.replace` (weights first, JSON last)
    and stale weight files / index from an earlier save are removed.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        groups = shard(tensors, max_shard_bytes)
        weight_files: list[str] = []
        if len(groups) == 1:
            write_safetensors(groups[0], tmp / SINGLE_NAME)
            weight_files.append(SINGLE_NAME)
        else:
            weight_map = {}
            for i, group in enumerate(groups):
                name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
                write_safetensors(group, tmp / name)
                weight_files.append(name)
                weight_map.update({k: name for k in group})
            total = sum(int(a.nbytes) for a in tensors.values())
            _write_json(tmp / INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})
            weight_files.append(INDEX_NAME)
        for name, obj in json_files.items():
            _write_json(tmp / name, obj)
        if not directory.exists():
            os.replace(tmp, directory)
            return
        for name in weight_files + list(json_files):
            os.replace(tmp / name, directory / name)
        stale = [p for p in _weight_files(directory.iterdir()) if p.name not in weight_files]
        for p in stale:
            p.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _weight_files(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if p.name.endswith(".safetensors") or p.name == INDEX_NAME]


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
