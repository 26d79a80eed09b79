"""The headline T5Gemma claim on a real Gemma: Gemma 3 270M adapted to a 270M-270M encoder-decoder (T5Gemma 2
style: tied embeddings, merged attention) against Gemma 3 270M itself, both adapted on the same tokens and then
finetuned on the same seq2seq task. The logic of `notebooks/09_real_t5gemma.ipynb`.

`sizes_study.SizesStudy` runs the design with S = the real model and models S-S (the encoder-decoder) and dec-S
(the decoder-only original, continued on the same PrefixLM rows), then finetunes both on the text-to-text
mixture and times batch-1 generation. This module supplies what differs from the stand-in study:

* `study_texts`: every text the study tokenizes (the corpus documents `packed_rows` draws, the mixture's prompts
  and answers), so that the vocabulary is pruned to what the study reads;
* `load_upstream`: the preset's model (`real_gemma.load_base`) pruned to those texts, as the study's upstream
  (both roles, one model) with a fingerprint of the weights file and the kept ids, and its pruned tokenizer;
* `not_run_reason`: why a preset leaves the study out (`run: false`, e.g. at cpu scale).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench import pretrained, real_gemma
from workbench import sizes_study as ss
from workbench.data import load_task

# What a minimal run would cost on 2 cores, from 07_real_gemma's measured PrefixLM training rate of the pruned
# 270M-270M (187 tokens/s in the batch of 2026-12-04): the cpu preset does not run the study.
CPU_COST = ("at 2 cores' ~190 training tokens/s for the 270M-270M (07_real_gemma), a minimal design (3 seeds x "
            "2 models x ~0.2M adaptation tokens + one epoch of ~2,000 mixture examples) takes ~3.5 hours, more "
            "than twice the whole cpu batch's 90 minutes")


def study_texts(P: Mapping[str, Any], corpus: Any) -> list[str]:
    """The corpus documents `SizesStudy.load_data` packs (training and held-out rows) plus, when the preset has
    the IT analogue, the mixture's prompts and answers (both splits)."""
    PT = P["pt"]
    texts = (ss.packed_texts(corpus["train"], PT["steps"] * PT["batch"], PT["seq_len"])
             + ss.packed_texts(corpus["validation"], PT["eval_rows"], PT["seq_len"]))
    if P.get("it") is not None:
        mix = load_task(P["it"]["task"])
        for split in ("train", "test"):
            texts += list(mix[split]["inputs"]) + list(mix[split]["targets"])
    return texts


def load_upstream(P: Mapping[str, Any], corpus: Any, seed: int = 0) -> tuple[dict[str, ss.Upstream], Any]:
    """({'small': up, 'large': up}, pruned tokenizer): the preset's `model` (a registered real model, or a random
    preset for smoke runs) with its vocabulary pruned to `study_texts`. The fingerprint covers the weights
    (the registered file's sha256, else the preset name and seed) and the kept ids."""
    name = P["model"]
    config, params, tok = real_gemma.load_base(name, seed)
    config, params, tok = real_gemma.prune_to_texts(config, params, tok, study_texts(P, corpus))
    source = pretrained.entry(name).sha256 if name in pretrained.REGISTRY else f"random {name} seed {seed}"
    digest = hashlib.sha256(source.encode() + np.asarray(tok.new_to_old, np.int64).tobytes()).hexdigest()[:16]
    up = (config, params, digest)
    return {role: up for role in ss.ROLES}, tok


def not_run_reason(P: Mapping[str, Any]) -> str | None:
    """None when the preset runs the study, else why not (`run: false`)."""
    if P["run"]:
        return None
    return f"the {P['scale']} preset does not run this study (`run: false`): {CPU_COST}; SCALE=gpu runs it"
