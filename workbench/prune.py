"""Vocabulary pruning: keep only the token ids a corpus or task uses (pure functions on parameter pytrees).

Real Gemma 3 270M spends 168M of its 268M parameters on a 262,144-row embedding that is also the tied LM
head; on a CPU that table dominates every step. Pruning keeps the rows of `keep_ids` and renumbers them
0..n-1 in ascending old-id order, so specials at 0..3 keep their ids (pad 0, eos 1, bos 2, unk 3) and the
defaults of `generate` still hold. The LM head is tied and the final soft-cap is per element, so the pruned
model's logits equal the full model's logits at the kept columns.

- `used_token_ids`: the sorted unique ids that texts (or token arrays) use, plus the specials;
- `VocabMap`: `old_to_new` / `new_to_old` arrays to map inputs, labels and generations;
- `prune_vocab`: (config, params) of any model kind -> pruned (config, params), checked with `jax.eval_shape`;
- `PrunedTokenizer`: the `Tokenizer` interface over the new ids (out-of-vocabulary ids -> unk, counted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import numpy as np

from workbench.adapt import check_params
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig
from workbench.data.tokenizer import Tokenizer
from workbench.models import model_for

Params = dict[str, Any]
Config = GemmaConfig | EncDecConfig | EncoderOnlyConfig

_CHUNK = 1024  # texts encoded per SentencePiece call in `used_token_ids`


# ------------------------------------------------------------------------------------------ id sets
def used_token_ids(tokenizer: Tokenizer, texts_or_token_arrays: Iterable[str | Sequence[int] | np.ndarray], *,
                   specials: bool = True) -> np.ndarray:
    """Sorted unique int64 ids of everything the inputs use, plus pad/eos/bos/unk.

    Items are texts (encoded with `tokenizer`, no BOS/EOS added: those are specials anyway) or token arrays
    of any shape (validated against the vocabulary). `specials=True` adds the sentinel and UL2 mode ids when
    the tokenizer has them (a vocabulary without them is skipped silently).
    """
    if isinstance(texts_or_token_arrays, str):
        texts_or_token_arrays = [texts_or_token_arrays]
    seen_V = np.zeros(tokenizer.vocab_size, bool)
    seen_V[[tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id, tokenizer.unk_id]] = True
    if specials:
        try:
            seen_V[tokenizer.sentinel_ids + list(tokenizer.mode_ids.values())] = True
        except ValueError:
            pass  # no sentinel / mode pieces in this vocabulary
    pending: list[str] = []

    def flush() -> None:
        for ids in tokenizer.encode_batch(pending):
            seen_V[ids] = True
        pending.clear()

    for item in texts_or_token_arrays:
        if isinstance(item, str):
            pending.append(item)
            if len(pending) >= _CHUNK:
                flush()
            continue
        ids = np.asarray(item).ravel()
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token arrays must hold integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
            raise ValueError(f"token ids must lie in [0, {tokenizer.vocab_size}), got {ids.min()}..{ids.max()}")
        seen_V[ids] = True
    flush()
    return np.flatnonzero(seen_V).astype(np.int64)


def _check_keep_ids(keep_ids: Any, vocab_size: int) -> np.ndarray:
    keep = np.asarray(keep_ids)
    if keep.ndim != 1:
        raise ValueError(f"keep_ids must be one-dimensional, got shape {keep.shape}")
    if keep.size == 0:
        raise ValueError("keep_ids is empty: keep at least one token id")
    if not np.issubdtype(keep.dtype, np.integer):
        raise ValueError(f"keep_ids must be integers, got dtype {keep.dtype}")
    if keep.min() < 0 or keep.max() >= vocab_size:
        raise ValueError(f"keep_ids must lie in [0, {vocab_size}), got {keep.min()}..{keep.max()}")
    bad = np.flatnonzero(np.diff(keep) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"keep_ids must be sorted ascending without duplicates: position {i + 1} holds "
                         f"{keep[i + 1]} after {keep[i]}")
    return keep.astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class VocabMap:
    """Old <-> new ids of a pruned vocabulary: kept ids renumbered 0..n-1 in ascending old-id order.

    `new_to_old` [n] is `keep_ids`; `old_to_new` [V_old] holds each kept id's new id and -1 elsewhere. Both are
    read-only int64 arrays; use them directly or through `to_new` / `to_old` (any shape, e.g. labels [B, T]).
    """

    new_to_old: np.ndarray
    old_to_new: np.ndarray

    @classmethod
    def from_keep_ids(cls, keep_ids: Any, old_vocab_size: int) -> VocabMap:
        """Validate `keep_ids` (sorted, unique, in [0, old_vocab_size), non-empty) and build both arrays."""
        new_to_old = _check_keep_ids(keep_ids, old_vocab_size).copy()
        old_to_new = np.full(old_vocab_size, -1, np.int64)
        old_to_new[new_to_old] = np.arange(new_to_old.size)
        new_to_old.flags.writeable = old_to_new.flags.writeable = False
        return cls(new_to_old, old_to_new)

    @property
    def vocab_size(self) -> int:
        return int(self.new_to_old.size)

    @property
    def old_vocab_size(self) -> int:
        return int(self.old_to_new.size)

    def kept(self, old_ids: Any) -> np.ndarray:
        """Boolean mask: which old ids survive (ids outside the old vocabulary count as not kept)."""
        ids = np.asarray(old_ids)
        inside = (ids >= 0) & (ids < self.old_vocab_size)
        return inside & (self.old_to_new[np.where(inside, ids, 0)] >= 0)

    def to_new(self, old_ids: Any, *, fill: int | None = None) -> np.ndarray:
        """New ids of `old_ids`; an id that is not kept raises, or becomes `fill` (e.g. the new unk id)."""
        ids = np.asarray(old_ids)
        kept = self.kept(ids)
        if fill is None and not kept.all():
            raise ValueError(f"{int((~kept).sum())} ids are not kept, e.g. {ids[~kept].ravel()[:5].tolist()}; "
                             "pass fill= to replace them")
        return np.where(kept, self.old_to_new[np.where(kept, ids, 0)], fill if fill is not None else -1)

    def to_old(self, new_ids: Any) -> np.ndarray:
        """Old ids of `new_ids` (e.g. pruned-model generations); ids outside [0, n) raise."""
        ids = np.asarray(new_ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"new ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        return self.new_to_old[ids]


# ------------------------------------------------------------------------------------------ params


def _prune_stack(cfg: GemmaConfig, tree: Params, vmap: VocabMap) -> tuple[GemmaConfig, Params]:
    """One stack: slice its embedding rows (if it has a table) and remap or drop its eoi token."""
    eoi = cfg.eoi_token_id
    new_eoi = int(vmap.to_new(eoi)) if eoi is not None and vmap.kept(eoi) else None
    cfg = cfg.replace(vocab_size=vmap.vocab_size, eoi_token_id=new_eoi)
    if "embedder" in tree:  # a tied encoder has no table of its own (it reads the decoder's)
        emb = dict(tree["embedder"])
        emb["embedding"] = emb["embedding"][vmap.new_to_old]
        if new_eoi is None:
            emb.pop("eoi_embedding", None)
        tree = {**tree, "embedder": emb}
    return cfg, tree


def prune_vocab(config: Config, params: Params, keep_ids: Any) -> tuple[Config, Params]:
    """(config, params) restricted to the token ids `keep_ids`, renumbered 0..n-1 in ascending order.

    Works for decoder-only, encoder-decoder (tied or not) and encoder-only models: every stack's vocab_size
    becomes n, every embedding table keeps the rows `keep_ids` (the tied LM head with it), and a stack's
    `eoi_token_id` is remapped, or set to None with its `eoi_embedding` dropped when that id is not kept.
    Pure: inputs are untouched; untouched leaves are shared. Build `keep_ids` with `used_token_ids`; map
    data with `VocabMap.from_keep_ids(keep_ids, old_vocab).to_new` or a `PrunedTokenizer`.
    """
    names = model_for(config).stacks or (None,)  # None: the config is itself the one stack (params at the root)
    stack_cfgs = [config if n is None else getattr(config, n) for n in names]
    sizes = {c.vocab_size for c in stack_cfgs}
    if len(sizes) != 1:
        raise ValueError(f"prune_vocab needs one vocabulary shared by all stacks, got vocab sizes {sorted(sizes)}")
    vmap = VocabMap.from_keep_ids(keep_ids, sizes.pop())
    check_params(params, model_for(config).abstract_params(), "params given to prune_vocab")

    out = jax.tree_util.tree_map(lambda x: x, params)  # new containers, same leaves
    new_stacks = {}
    for name, cfg in zip(names, stack_cfgs, strict=True):
        cfg, tree = _prune_stack(cfg, out if name is None else out[name], vmap)
        if name is None:
            config, out = cfg, tree
        else:
            new_stacks[name], out[name] = cfg, tree
    if new_stacks:
        config = dataclasses.replace(config, **new_stacks)
    check_params(out, model_for(config).abstract_params(), "pruned params")
    return config, out


# --------------------------------------------------------------------------------------- tokenizer
class PrunedTokenizer:
    """The `Tokenizer` interface over a pruned vocabulary (new ids 0..n-1; see `VocabMap`).

    `encode` maps the base tokenizer's ids to new ids; an id outside the kept set becomes the new unk id and
    is counted in `oov_count` (reset it by assigning 0). Held-out text (validation, test, user prompts) can
    hit this: a word or byte-fallback piece never seen when `keep_ids` was built. Avoid it by building
    `keep_ids` from every split the model will read (train + validation + test text), or accept it and watch
    `oov_count`. `decode` maps back and decodes with the base tokenizer. pad/eos/bos/unk must be kept.
    """

    def __init__(self, tokenizer: Tokenizer, keep_ids: Any):
        self.base = tokenizer
        self.vocab_map = VocabMap.from_keep_ids(keep_ids, tokenizer.vocab_size)
        self.path = getattr(tokenizer, "path", None)
        self.vocab_size = self.vocab_map.vocab_size
        specials = {"pad": tokenizer.pad_id, "eos": tokenizer.eos_id, "bos": tokenizer.bos_id,
                    "unk": tokenizer.unk_id}
        missing = [f"{k} ({v})" for k, v in specials.items() if not self.vocab_map.kept(v)]
        if missing:
            raise ValueError(f"keep_ids must keep the special ids; missing: {', '.join(missing)}")
        self.pad_id, self.eos_id, self.bos_id, self.unk_id = (int(self.vocab_map.old_to_new[v])
                                                              for v in specials.values())
        self.oov_count = 0

    @property
    def old_to_new(self) -> np.ndarray:
        return self.vocab_map.old_to_new

    @property
    def new_to_old(self) -> np.ndarray:
        return self.vocab_map.new_to_old

    def _map(self, ids: list[int]) -> list[int]:
        new = self.vocab_map.to_new(np.asarray(ids, np.int64), fill=-1)
        oov = new < 0
        self.oov_count += int(oov.sum())
        return np.where(oov, self.unk_id, new).tolist()

    def _kept_specials(self, old_ids: list[int], what: str) -> list[int]:
        kept = self.vocab_map.kept(old_ids)
        if not kept.all():
            raise ValueError(f"{int((~kept).sum())} {what} ids are not in keep_ids; build keep_ids with "
                             "used_token_ids(..., specials=True)")
        return self.vocab_map.to_new(old_ids).tolist()

    @property
    def sentinel_ids(self) -> list[int]:
        return self._kept_specials(self.base.sentinel_ids, "sentinel")

    @property
    def mode_ids(self) -> dict[str, int]:
        modes = self.base.mode_ids
        return dict(zip(modes, self._kept_specials(list(modes.values()), "mode"), strict=True))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._map(self.base.encode(text, add_bos=add_bos, add_eos=add_eos))

    def encode_batch(self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False,
                     num_threads: int = -1) -> list[list[int]]:
        rows = self.base.encode_batch(texts, add_bos=add_bos, add_eos=add_eos, num_threads=num_threads)
        return [self._map(r) for r in rows]

    def decode(self, ids: Iterable[int]) -> str:
        ids = np.asarray(ids if hasattr(ids, "__array__") else list(ids), np.int64)
        return self.base.decode(self.vocab_map.to_old(ids).tolist())

    def id_to_piece(self, i: int) -> str:
        return self.base.id_to_piece(int(self.vocab_map.to_old(int(i))))

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"PrunedTokenizer(vocab_size={self.vocab_size} of {self.base.vocab_size}, path={self.path!r})"


def prune_tokenizer(tokenizer: Tokenizer, keep_ids: Any) -> PrunedTokenizer:
    """A `PrunedTokenizer` over `keep_ids` (same ids as `prune_vocab(config, params, keep_ids)`)."""
    return PrunedTokenizer(tokenizer, keep_ids)
