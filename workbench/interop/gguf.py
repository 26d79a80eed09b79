"""GGUF (llama.cpp) Gemma 2 / Gemma 3 files -> workbench decoder-only parameters, config and tokenizer.

GGUF tensor (numpy shape = reversed ggml dims; Linear weights are [out, in])  -> our path
  token_embd.weight                                                          embedder/embedding
  blk.{i}.attn_norm.weight                               (1 + w stored)      layer_i/pre_attention_norm/scale
  blk.{i}.attn_{q,k,v,output}.weight                     (transposed)        layer_i/attn/{q,k,v,o}_proj/kernel
  blk.{i}.attn_{q,k}_norm.weight   (Gemma 3)             (1 + w stored)      layer_i/attn/{q,k}_norm/scale
  blk.{i}.post_attention_norm.weight                     (1 + w stored)      layer_i/post_attention_norm/scale
  blk.{i}.ffn_norm.weight                                (1 + w stored)      layer_i/pre_ffw_norm/scale
  blk.{i}.ffn_{gate,up,down}.weight                      (transposed)        layer_i/mlp/{gate,up,down}_proj/kernel
  blk.{i}.post_ffw_norm.weight                           (1 + w stored)      layer_i/post_ffw_norm/scale
  output_norm.weight                                     (1 + w stored)      final_norm/scale
  output.weight (optional; tied, must equal token_embd.weight)
llama.cpp's converter stores every Gemma RMSNorm weight as 1 + w; ours are zero-centred (x * (1 + w)), so 1 is
subtracted (in fp32, as transformers does). Every tensor is dequantised to fp32 with `gguf.quants.dequantize`.

The header is parsed here rather than by `gguf.GGUFReader`, which builds one memory-map view per array
element and needs ~30 s for the 262k-entry token list of a Gemma 3 file (this parser: < 1 s).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import mmap
import re
import struct
from pathlib import Path
from typing import Any

import gguf
import jax
import jax.numpy as jnp
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from workbench import decoder
from workbench.config import GemmaConfig, gemma_config
from workbench.data.tokenizer import NUM_SENTINELS, Tokenizer
from workbench.interop import params_map as pm
from workbench.interop.errors import CheckpointError
from workbench.interop.hf_gemma2 import _compress

SUPPORTED_ARCHS = ("gemma2", "gemma3")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_SCALARS = {GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
            GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
            GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
            GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d"}
NORMS = {"pre_attention_norm": "attn_norm", "post_attention_norm": "post_attention_norm",
         "pre_ffw_norm": "ffn_norm", "post_ffw_norm": "post_ffw_norm"}
PROJS = {"attn": {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output"},
         "mlp": {"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}}
QK_NORMS = {"q_norm": "attn_q_norm", "k_norm": "attn_k_norm"}
# Config values GGUF does not store for Gemma 3: transformers' GGUF loader takes Gemma3TextConfig's defaults.
GEMMA3_DEFAULTS = {"local_rope_theta": 10_000.0, "query_pre_attn_scalar": 256, "sliding_window_pattern": 6}
# Metadata keys (under '<arch>.') read below; any other key under the architecture prefix is unsupported.
_KNOWN_KEYS = {"context_length", "embedding_length", "block_count", "feed_forward_length", "vocab_size",
               "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length",
               "attention.layer_norm_rms_epsilon", "attention.sliding_window", "attention.sliding_window_pattern",
               "attention.scale", "rope.freq_base", "rope.freq_base_swa", "rope.dimension_count",
               "rope.scaling.type", "rope.scaling.factor", "attn_logit_softcapping", "final_logit_softcapping"}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file: numpy shape (reversed ggml dims), ggml type, absolute byte offset and size."""

    name: str
    shape: tuple[int, ...]
    qtype: int
    offset: int
    nbytes: int


class GGUFFile:
    """Parsed header of a GGUF v2/v3 file: `metadata` (key -> value) and `tensors` (name -> TensorInfo).

    Scalars become Python values, string arrays lists of str, numeric arrays numpy arrays. `read` returns one
    tensor dequantised to fp32 (numpy shape).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    self._parse(view, len(mm))
                finally:
                    view.release()
        except (OSError, ValueError, struct.error, UnicodeDecodeError, IndexError) as e:
            raise CheckpointError(f"{self.path}: not a readable GGUF file: {e}") from e

    def _parse(self, buf: memoryview, size: int) -> None:
        if bytes(buf[:4]) != b"GGUF":
            raise ValueError(f"bad magic {bytes(buf[:4])!r} (expected b'GGUF')")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is unsupported (2 and 3 are; a big-endian file reads "
                             "as a huge version)")
        self.version = version
        off = 24
        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key, off = _string(buf, off)
            (vtype,) = struct.unpack_from("<I", buf, off)
            self.metadata[key], off = _value(buf, off + 4, vtype)
        infos = []
        for _ in range(n_tensors):
            name, off = _string(buf, off)
            (n_dims,) = struct.unpack_from("<I", buf, off)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, off + 4)
            off += 4 + 8 * n_dims
            qtype, rel = struct.unpack_from("<IQ", buf, off)
            off += 12
            infos.append((name, tuple(int(d) for d in reversed(dims)), qtype, rel))
        align = int(self.metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT))
        start = off + (-off % align)
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, qtype, rel in infos:
            self.tensors[name] = TensorInfo(name, shape, qtype, start + rel, _nbytes(shape, qtype))
        self.size = size

    def problems(self, name: str) -> str | None:
        """Why tensor `name` cannot be dequantised (unknown type, bad row size, past the end), or None."""
        t = self.tensors[name]
        if not _dequantizable(t.qtype):
            return f"{name}: ggml type {_qname(t.qtype)} cannot be dequantised by gguf {gguf_version()}"
        if t.nbytes < 0:
            block = GGML_QUANT_SIZES[GGMLQuantizationType(t.qtype)][0]
            return f"{name}: row of {t.shape[-1]} values is not a multiple of the {_qname(t.qtype)} block ({block})"
        if t.offset + t.nbytes > self.size:
            return f"{name}: data ends past the end of the file (truncated?)"
        return None

    def read(self, name: str) -> np.ndarray:
        """Tensor `name` dequantised to fp32, in numpy order (a torch Linear weight is [out, in])."""
        t = self.tensors[name]
        why = self.problems(name)
        if why:
            raise CheckpointError(f"{self.path}: {why}")
        qtype = GGMLQuantizationType(t.qtype)
        with open(self.path, "rb") as f:
            f.seek(t.offset)
            raw = np.fromfile(f, dtype=np.uint8, count=t.nbytes)
        raw = raw.reshape(gguf.quants.quant_shape_to_byte_shape(t.shape or (1,), qtype))
        try:
            out = gguf.quants.dequantize(raw, qtype)
        except NotImplementedError as e:
            raise CheckpointError(f"{self.path}: {name}: {e}") from e
        return np.asarray(out, dtype=np.float32).reshape(t.shape)


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse the header of a GGUF file (metadata and tensor table; no tensor data is read)."""
    return GGUFFile(path)


# ---------------------------------------------------------------------------------------------- config
def gguf_config(metadata: dict[str, Any], *, dtype: str = "float32", param_dtype: str = "float32") -> GemmaConfig:
    """GemmaConfig from GGUF metadata (`general.architecture` gemma2 / gemma3); unsupported fields raise, all named.

    From the file: block_count, embedding_length, feed_forward_length, head counts, key_length (= head_dim),
    sliding_window, rope.freq_base (global layers), rope.freq_base_swa (local layers, if present), linear RoPE
    scaling, rms eps, attention.sliding_window_pattern (if present), soft-caps (Gemma 2), vocab size = length
    of the token list; query_pre_attn_scalar = 1 / attention.scale^2 if that is present (llama.cpp writes it
    for neither family). Absent values, Gemma 3 (as transformers' GGUF loader, i.e. Gemma3TextConfig defaults):
    local RoPE base 10k, query_pre_attn_scalar 256 (right for 270M-12B; 27B wants 168), 5 local : 1 global.
    Absent values, Gemma 2 (as llama.cpp): sliding window 4096, soft-caps 50 / 30, alternating local / global,
    query_pre_attn_scalar = head_dim, or embed_dim // num_heads for the 46-layer 27B (transformers' loader
    takes Gemma2Config's 256 instead, wrong for 27B).
    """
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise CheckpointError(f"unsupported metadata fields: general.architecture={arch!r} "
                              f"(supported: {', '.join(SUPPORTED_ARCHS)})")
    p = f"{arch}."
    get = lambda k, default=None: metadata.get(p + k, default)  # noqa: E731
    problems: list[str] = []
    unknown = sorted(k for k in metadata if k.startswith(p) and k[len(p):] not in _KNOWN_KEYS)
    problems += [f"{k}={_short(metadata[k])!r} (unknown to this loader)" for k in unknown]
    missing = [p + k for k in ("block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                               "attention.layer_norm_rms_epsilon") if get(k) is None]
    if missing:
        raise CheckpointError("missing metadata fields: " + ", ".join(missing))
    n, d, heads = int(get("block_count")), int(get("embedding_length")), int(get("attention.head_count"))
    head_dim = int(get("attention.key_length", d // heads))
    for k in ("attention.value_length", "rope.dimension_count"):
        if get(k) is not None and int(get(k)) != head_dim:
            problems.append(f"{p}{k}={get(k)} (must equal attention.key_length = {head_dim})")
    if int(metadata.get("split.count", 1)) > 1:
        problems.append(f"split.count={metadata['split.count']} (split files are unsupported: merge them first, "
                        "e.g. with llama-gguf-split --merge)")
    scaling = 1.0
    rtype = get("rope.scaling.type", "none")
    if rtype == "linear":
        scaling = float(get("rope.scaling.factor", 1.0))
    elif rtype != "none":
        problems.append(f"{p}rope.scaling.type={rtype!r} (only 'none' and 'linear' are supported)")
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = len(tokens) if tokens is not None else get("vocab_size")
    if vocab is None:
        problems.append("tokenizer.ggml.tokens (absent, and no vocab_size either: the vocabulary size is unknown)")
    elif get("vocab_size") is not None and int(get("vocab_size")) != vocab:
        problems.append(f"{p}vocab_size={get('vocab_size')} (the token list has {vocab} entries)")
    pattern = _pattern(get("attention.sliding_window_pattern"), arch, n, problems, p)
    if get("attention.scale") is not None:
        scale = float(get("attention.scale"))
        qpas = 1.0 / scale**2 if scale > 0 else 0.0
        if qpas < 1 or abs(qpas - round(qpas)) > 1e-3 * qpas:
            problems.append(f"{p}attention.scale={scale} (1 / scale^2 must be a positive integer)")
        qpas = round(qpas)
    elif arch == "gemma3":
        qpas = GEMMA3_DEFAULTS["query_pre_attn_scalar"]
    else:
        qpas = d // heads if n == 46 else head_dim
    if problems:
        raise CheckpointError("unsupported metadata fields: " + "; ".join(problems))
    fields: dict[str, Any] = dict(
        vocab_size=int(vocab), num_layers=n, embed_dim=d, hidden_dim=int(get("feed_forward_length")),
        num_heads=heads, head_dim=head_dim, num_kv_heads=int(get("attention.head_count_kv", heads)),
        query_pre_attn_scalar=int(qpas), rms_norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        rope_theta=float(get("rope.freq_base", 10_000.0)), rope_scaling_factor=scaling,
        attention_pattern=pattern, dtype=dtype, param_dtype=param_dtype)
    fields["sliding_window"] = int(get("attention.sliding_window", 4096))
    local_theta = get("rope.freq_base_swa", GEMMA3_DEFAULTS["local_rope_theta"] if arch == "gemma3" else None)
    if local_theta is not None:
        fields["local_rope_theta"] = float(local_theta)
    for key, field in (("attn_logit_softcapping", "attn_logits_soft_cap"),
                       ("final_logit_softcapping", "final_logit_soft_cap")):
        if get(key) is not None:
            fields[field] = float(get(key)) or None
    try:
        return gemma_config(arch, **fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid metadata values: {e}") from e


def _pattern(value: Any, arch: str, n: int, problems: list[str], p: str) -> tuple[str, ...]:
    """Local/global cycle from `attention.sliding_window_pattern` (int period, or per-layer bools: True = local)."""
    if value is None:
        period = GEMMA3_DEFAULTS["sliding_window_pattern"] if arch == "gemma3" else 2
        return ("local",) * (period - 1) + ("global",)
    if isinstance(value, (int, np.integer)) and int(value) >= 1:
        return ("local",) * (int(value) - 1) + ("global",)
    flags = list(np.asarray(value).reshape(-1)) if not isinstance(value, (int, np.integer)) else []
    if len(flags) != n:
        problems.append(f"{p}attention.sliding_window_pattern={_short(value)!r} (need a period or {n} flags)")
        return ("global",)
    return _compress(["local" if f else "global" for f in flags])


# ---------------------------------------------------------------------------------------------- weights
def gguf_name(path: pm.Path_) -> tuple[str, bool, bool]:
    """(GGUF tensor name, transpose?, stored as 1 + w?) of one leaf of our decoder tree."""
    if path == ("embedder", "embedding"):
        return "token_embd.weight", False, False
    if path == ("final_norm", "scale"):
        return "output_norm.weight", False, True
    m = re.fullmatch(r"layer_(\d+)", path[0])
    if m and len(path) == 3 and path[1] in NORMS and path[2] == "scale":
        return f"blk.{m[1]}.{NORMS[path[1]]}.weight", False, True
    if m and len(path) == 4 and path[1] == "attn" and path[2] in QK_NORMS and path[3] == "scale":
        return f"blk.{m[1]}.{QK_NORMS[path[2]]}.weight", False, True
    if m and len(path) == 4 and path[1] in PROJS and path[2] in PROJS[path[1]] and path[3] == "kernel":
        return f"blk.{m[1]}.{PROJS[path[1]][path[2]]}.weight", True, False
    raise CheckpointError(f"parameter {'/'.join(path)} has no GGUF counterpart")


def load_gguf(path: str | Path, *, param_dtype: str = "float32",
              dtype: str = "float32") -> tuple[GemmaConfig, dict[str, Any]]:
    """Read a Gemma 2 / Gemma 3 GGUF file (any quantisation `gguf` dequantises) into (config, params).

    Tensors are dequantised to fp32, norms converted to zero-centred scales, Linear weights transposed, then
    cast to `param_dtype`; `dtype` is the activation dtype put in the config (see `gguf_config` for the
    config fields GGUF lacks). Every mismatch (missing / unexpected tensors, wrong shapes, untied LM head,
    unsupported tensor types or metadata fields) raises one CheckpointError naming each offender.
    """
    if param_dtype not in _DTYPES:
        raise CheckpointError(f"param_dtype must be one of {sorted(_DTYPES)}, got {param_dtype!r}")
    f = read_gguf(path)
    config = gguf_config(f.metadata, dtype=dtype, param_dtype=param_dtype)
    shapes = pm.expected_shapes(lambda: decoder.init(config, jax.random.key(0)))
    by_name = {}
    for p in shapes:
        name, tr, norm = gguf_name(p)
        by_name[name] = (p, tr, norm)
    present = set(f.tensors)
    missing = sorted(set(by_name) - present)
    unexpected = sorted(present - set(by_name) - {"output.weight"})
    wrong = []
    for name in sorted(present & set(by_name)):
        p, tr, _ = by_name[name]
        exp = shapes[p][::-1] if tr else shapes[p]
        if f.tensors[name].shape != exp:
            wrong.append(f"{name}: expected {list(exp)}, found {list(f.tensors[name].shape)}")
    if "output.weight" in present and "token_embd.weight" in present:
        head, emb = f.tensors["output.weight"].shape, f.tensors["token_embd.weight"].shape
        if head != emb:
            wrong.append(f"output.weight: must equal token_embd.weight (tied) {list(emb)}, found {list(head)}")
    wrong += [why for name in sorted(present) if (why := f.problems(name))]
    if not (missing or unexpected or wrong) and "output.weight" in present:
        if not np.array_equal(f.read("output.weight"), f.read("token_embd.weight")):
            wrong.append("output.weight: must equal token_embd.weight (tied), but the values differ")
    pm._raise_if(f"GGUF file {f.path}", missing, unexpected, wrong)
    cast = _DTYPES[param_dtype]
    flat = {}
    for name, (p, tr, norm) in by_name.items():
        arr = f.read(name)
        if norm:
            arr = arr - np.float32(1.0)
        flat[p] = jnp.asarray(arr.T if tr else arr, dtype=cast)
    return config, pm.unflatten(flat)


# -------------------------------------------------------------------------------------------- tokenizer
def gguf_tokenizer_proto(metadata: dict[str, Any]) -> bytes:
    """A serialised SentencePiece ModelProto (BPE) rebuilt from GGUF tokenizer metadata (`tokenizer.ggml.*`).

    Pieces, scores and types are the file's. Whitespace-only tokens, which llama.cpp stores with real spaces,
    are respelled with '▁' (as SentencePiece and transformers see them). Control tokens other than pad / eos /
    bos / unk become user-defined pieces, so that text such as '<start_of_turn>' is one token, as with
    transformers' GGUF tokenizer. Normalisation is the identity, no whitespace collapsing, a dummy prefix only
    with `add_space_prefix`, byte fallback when the 256 byte tokens are present.
    """
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    model = metadata.get("tokenizer.ggml.model")
    problems = []
    if model != "llama":
        problems.append(f"tokenizer.ggml.model={model!r} (only 'llama', i.e. SentencePiece, is supported)")
    if metadata.get("tokenizer.ggml.precompiled_charsmap") is not None:
        problems.append("tokenizer.ggml.precompiled_charsmap (normalisation rules are unsupported)")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not tokens:
        problems.append("tokenizer.ggml.tokens (absent or empty)")
        tokens = []
    n = len(tokens)
    scores = np.asarray(metadata.get("tokenizer.ggml.scores", np.zeros(n)), np.float32)
    types = np.asarray(metadata.get("tokenizer.ggml.token_type", np.ones(n)), np.int64)
    if len(scores) != n or len(types) != n:
        problems.append(f"tokenizer.ggml.scores / token_type lengths ({len(scores)}, {len(types)}) != {n} tokens")
    ids = {k: metadata.get(f"tokenizer.ggml.{k}_token_id") for k in ("unknown", "bos", "eos", "padding")}
    for k, i in ids.items():
        if i is not None and not 0 <= int(i) < n:
            problems.append(f"tokenizer.ggml.{k}_token_id={i} (outside the {n} tokens)")
    if ids["unknown"] is None:
        problems.append("tokenizer.ggml.unknown_token_id (absent; SentencePiece needs an unknown piece)")
    if problems:
        raise CheckpointError("unsupported tokenizer metadata: " + "; ".join(problems))
    pieces = [t.replace(" ", "\u2581") if t and not t.strip() else t for t in tokens]
    dup = sorted(p for p, c in collections.Counter(pieces).items() if c > 1) if len(set(pieces)) != n else []
    empty = [i for i, t in enumerate(pieces) if not t]
    if dup or empty:
        raise CheckpointError(f"unsupported tokenizer metadata: duplicate tokens {dup[:10]}, "
                              f"empty tokens at {empty[:10]}")
    special = {int(i) for i in ids.values() if i is not None}
    kind = spm_pb2.ModelProto.SentencePiece.Type
    sp_type = {1: kind.NORMAL, 2: kind.UNKNOWN, 3: kind.USER_DEFINED, 4: kind.USER_DEFINED, 5: kind.UNUSED,
               6: kind.BYTE}
    proto = spm_pb2.ModelProto()
    for i, (piece, score, t) in enumerate(zip(pieces, scores.tolist(), types.tolist(), strict=True)):
        ty = kind.UNKNOWN if i == int(ids["unknown"]) else kind.CONTROL if i in special else sp_type.get(t, kind.NORMAL)
        proto.pieces.add(piece=piece, score=score, type=ty)
    ts = proto.trainer_spec
    ts.model_type = spm_pb2.TrainerSpec.BPE
    ts.vocab_size = n
    ts.byte_fallback = int((types == 6).sum()) == 256
    for k, field in (("unknown", "unk"), ("bos", "bos"), ("eos", "eos"), ("padding", "pad")):
        i = ids[k]
        setattr(ts, f"{field}_id", -1 if i is None else int(i))
        if i is not None:
            setattr(ts, f"{field}_piece", pieces[int(i)])
    ns = proto.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return proto.SerializeToString()


def load_gguf_tokenizer(path: str | Path, num_sentinels: int = NUM_SENTINELS) -> Tokenizer:
    """Our SentencePiece `Tokenizer` built from a GGUF file's tokenizer metadata (see `gguf_tokenizer_proto`).

    Its ids equal transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` (with
    `add_special_tokens=False`), except on the literal strings of pad / eos / bos / unk ('<eos>' ...), which
    transformers turns into those ids and SentencePiece spells out. The file's `tokenizer.ggml.add_bos_token`
    (True for Gemma) means LM inputs should be encoded with `add_bos=True`.
    """
    f = read_gguf(path)
    return Tokenizer.from_model_proto(gguf_tokenizer_proto(f.metadata), path=str(f.path),
                                      num_sentinels=num_sentinels)


# ------------------------------------------------------------------------------------------ header parsing
def _string(buf: memoryview, off: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, off)
    end = off + 8 + n
    if end > len(buf):
        raise ValueError(f"string at byte {off} runs past the end of the file")
    return str(buf[off + 8:end], "utf-8"), end


def _value(buf: memoryview, off: int, vtype: int) -> tuple[Any, int]:
    vtype = GGUFValueType(vtype)
    if vtype == GGUFValueType.STRING:
        return _string(buf, off)
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        (v,) = struct.unpack_from(fmt, buf, off)
        return v, off + struct.calcsize(fmt)
    etype, count = struct.unpack_from("<IQ", buf, off)
    etype, off = GGUFValueType(etype), off + 12
    if etype in _SCALARS:
        dt = np.dtype(_SCALARS[etype].replace("?", "b1"))
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=off).copy()
        return arr, off + dt.itemsize * count
    items = []
    for _ in range(count):
        item, off = _value(buf, off, etype)
        items.append(item)
    return items, off


@functools.cache
def _dequantizable(qtype: int) -> bool:
    """Whether `gguf.quants.dequantize` handles this ggml type (tried on one zero block)."""
    try:
        qt = GGMLQuantizationType(qtype)
        gguf.quants.dequantize(np.zeros((1, GGML_QUANT_SIZES[qt][1]), np.uint8), qt)
    except (ValueError, KeyError, NotImplementedError):
        return False
    return True


def gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def _nbytes(shape: tuple[int, ...], qtype: int) -> int:
    """Bytes of a tensor; -1 if its rows are not whole blocks, 0 for an unknown type (reported later)."""
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
    except (ValueError, KeyError):
        return 0
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if shape and shape[-1] % block:
        return -1
    return count // block * size


def _qname(qtype: int) -> str:
    try:
        return GGMLQuantizationType(qtype).name
    except ValueError:
        return str(qtype)


def _short(v: Any) -> Any:
    if isinstance(v, (list, np.ndarray)) and len(v) > 8:
        return f"[{len(v)} values]"
    return v.tolist() if isinstance(v, np.ndarray) else v
