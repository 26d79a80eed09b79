"""A real pretrained Gemma on a CPU: load, prune the vocabulary, adapt (T5Gemma 2 encoder-decoder and Gemma
Encoder), a short PrefixLM adaptation, and the transformers export check. The steps of `07_real_gemma`.

- `load_base(name)`: a registered real model ('gemma3-270m', full vocabulary, its own tokenizer) or, for smoke
  runs, a random preset ('tiny3') over the workbench tokenizer;
- `prune_to_texts`: keep the token ids the given texts use (`prune.prune_vocab` + `PrunedTokenizer`);
- `to_encdec` / `to_encoder`: balanced T5Gemma 2 style encoder-decoder (tied embeddings, merged attention whose
  K/V weights are the decoder's self-attention ones) and a bidirectional encoder-only model;
- `prefix_rows` / `prefix_lm_adapt` / `prefix_lm_loss`: PrefixLM rows from whole documents, a short adaptation
  with the trainer, the held-out PrefixLM loss;
- `export_and_compare`: `save_hf_t5gemma2`, transformers `from_pretrained` + greedy `generate`, and ours on the
  same prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from workbench import adapt, evaluate, generate, objectives, pretrained, prune, recipes, zoo
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig, decoder_preset, encdec_config
from workbench.data.pipeline import pad_to
from workbench.data.tokenizer import model_tokenizer
from workbench.models import model_for
from workbench.train import TrainConfig, train

Params = dict[str, Any]


def load_base(name: str, seed: int = 0) -> tuple[GemmaConfig, Params, Any]:
    """(config, params, tokenizer): a registered real model with its own tokenizer, or a random decoder preset
    sized to the workbench tokenizer (smoke runs)."""
    if name in pretrained.REGISTRY:
        config, params = zoo.load(name)
        return config, params, model_tokenizer(name)
    tok = model_tokenizer()
    config = decoder_preset(name, vocab_size=len(tok))
    return config, adapt.from_scratch(config, jax.random.key(seed)), tok


def prune_to_texts(config: GemmaConfig, params: Params, tokenizer: Any,
                   texts: Sequence[str]) -> tuple[GemmaConfig, Params, prune.PrunedTokenizer]:
    """Keep the ids `texts` use plus the specials (pad, eos, bos, unk, sentinels / mode tokens)."""
    keep = prune.used_token_ids(tokenizer, texts)
    new_config, new_params = prune.prune_vocab(config, params, keep)
    return new_config, new_params, prune.prune_tokenizer(tokenizer, keep)


def to_encdec(config: GemmaConfig, params: Params) -> tuple[EncDecConfig, Params]:
    """Balanced encoder-decoder in the family's style (Gemma 3: T5Gemma 2 — tied, merged attention)."""
    ed_config = encdec_config(config, config)
    return ed_config, adapt.decoder_to_encdec(params, ed_config)


def to_encoder(config: GemmaConfig, params: Params, rng: jax.Array, *, pooling: str = "mean",
               num_labels: int = 2) -> tuple[EncoderOnlyConfig, Params]:
    """Gemma Encoder: the decoder made bidirectional, with pooling and a fresh classification head."""
    enc_config = EncoderOnlyConfig(encoder=config, pooling=pooling, num_labels=num_labels)
    return enc_config, adapt.decoder_to_encoder_only(params, enc_config, rng)


def prefix_rows(tokenizer: Any, texts: Sequence[str], seq_len: int) -> dict[str, np.ndarray]:
    """PrefixLM examples from whole documents: BOS + the first seq_len - 1 tokens of each document that has
    that many; the first half is the encoder input, the second half the target."""
    ids = [x[: seq_len - 1] for x in tokenizer.encode_batch(list(texts)) if len(x) >= seq_len - 1]
    if not ids:
        raise ValueError(f"no document has {seq_len - 1} tokens: lower seq_len")
    rows = pad_to([[tokenizer.bos_id, *x] for x in ids], seq_len, tokenizer.pad_id)
    half = seq_len // 2
    return {"inputs": rows[:, :half], "targets": rows[:, half:]}


def prefix_lm_loss(ed_config: EncDecConfig, params: Params, rows: dict[str, np.ndarray],
                   batch_size: int = 8) -> dict[str, float]:
    """Held-out PrefixLM loss (nats per target token) of an encoder-decoder."""
    return evaluate.eval_loss(objectives.encdec_seq2seq_loss(ed_config), params, rows, batch_size)


def prefix_lm_adapt(ed_config: EncDecConfig, params: Params, rows: dict[str, np.ndarray], train_config: TrainConfig,
                    out_dir: str | Path, batch_size: int, seed: int = 0
                    ) -> tuple[Params, dict[str, float], list[float]]:
    """A short PrefixLM adaptation (resumable under `out_dir`); returns the params, the step statistics
    (median tokens/s of the training steps after the first, which compiles; the call's wall time) and the
    training loss per step."""
    seq = rows["inputs"].shape[1] + rows["targets"].shape[1]
    model_flops = model_for(ed_config).train_flops_per_example(rows["inputs"].shape[1], rows["targets"].shape[1]) / seq
    t0 = time.perf_counter()
    result = train(objectives.encdec_seq2seq_loss(ed_config), params,
                   recipes.row_batches(rows, batch_size, seed), train_config, out_dir=str(out_dir),
                   flops_per_token=model_flops, tokens_per_batch_fn=lambda b: b["inputs"].size + b["targets"].size,
                   progress=False, run_info={"model": "encdec-prefix-lm", "rows": int(len(rows["inputs"]))})
    wall = time.perf_counter() - t0
    rates = [r["tokens_per_s"] for r in result.history[1:] if "tokens_per_s" in r]
    losses = [r["loss"] for r in result.history if "loss" in r]
    stats = {"steps": float(result.step), "wall_s": wall,
             "tokens_per_s": float(np.median(rates)) if rates else float("nan"),
             "first_loss": float(losses[0]) if losses else float("nan"),
             "last_loss": float(losses[-1]) if losses else float("nan"),
             "train_flops_per_token": float(model_flops)}
    return result.params, stats, [float(x) for x in losses]


def export_and_compare(ed_config: EncDecConfig, params: Params, prompts_BxS: np.ndarray, max_new_tokens: int,
                       out_dir: str | Path, eos_id: int) -> dict[str, Any]:
    """Export with `save_hf_t5gemma2`, load with transformers' `T5Gemma2ForConditionalGeneration`, and compare
    both models' greedy tokens on the same (right-padded, pad 0) prompts."""
    import torch
    from transformers import T5Gemma2ForConditionalGeneration

    from workbench.interop import save_hf_t5gemma2

    save_hf_t5gemma2(ed_config, params, out_dir)
    hf = T5Gemma2ForConditionalGeneration.from_pretrained(str(out_dir), attn_implementation="eager").eval()
    mask = prompts_BxS != 0
    with torch.no_grad():
        hf_out = hf.generate(input_ids=torch.tensor(prompts_BxS), attention_mask=torch.tensor(mask),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id, pad_token_id=0)
    hf_tokens = hf_out[:, 1:].numpy()  # drop the decoder start token
    ours = np.asarray(generate.generate(params, ed_config, prompts_BxS, max_new_tokens, mask, eos_id=eos_id))
    width = max(hf_tokens.shape[1], ours.shape[1])
    hf_tokens, ours = (np.pad(t, ((0, 0), (0, width - t.shape[1]))) for t in (hf_tokens, ours))
    return {"ours": ours, "transformers": hf_tokens, "identical": bool(np.array_equal(ours, hf_tokens)),
            "hf_params": int(sum(p.numel() for p in hf.parameters()))}
