"""The decoder-only seq2seq step with the LM head on the target positions only, against the head on every position.

`objectives.decoder_seq2seq_loss` (the sizes study's decoder-only baselines, finetuning, the R2 baseline) reads
[inputs ; targets] and scores the T targets only; it applies the head to the T positions that predict them
(`decoder.forward(logits_window=...)`). The reference is the formulation it replaced: the head over all S + T
positions, the logits sliced afterwards (same loss and gradients; `tests/adapt/test_objectives.py`). Both run
through the trainer's `Stepper` in their own worker process, interleaved.

    .venv/bin/python benchmarks/seq2seq_head.py --rounds 3 --steps 2     # ~6 min on 2 quiet cores
    .venv/bin/python benchmarks/seq2seq_head.py --quick                  # smoke

Rows: the sizes study's cpu stand-ins ('mini' S and 'mini-large' L, batch 8 x (64 + 64), as 03_sizes adapts
them) and Gemma 3 270M (the registry package) with its vocabulary pruned as in `train_throughput.py`'s real row
and, with `--full-vocab`, its whole 262k vocabulary (the gpu presets' case), batch 4 x (64 + 64). Last line:
`speedup_head_on_targets mini=X mini_large=Y gemma3_270m=Z`.
"""

from __future__ import annotations

import argparse
import os

import common
from common import Worker, interleave

ROWS = ("mini", "mini_large", "gemma3_270m", "gemma3_270m_full")


def _config_and_params(row: str, quick: bool):
    import jax

    from workbench import decoder, real_gemma
    from workbench.config import decoder_preset

    if quick:
        cfg = decoder_preset("tiny")
        return cfg, decoder.init(cfg, jax.random.key(0))
    if row in ("mini", "mini_large"):
        cfg = decoder_preset(row.replace("_", "-"))
        return cfg, decoder.init(cfg, jax.random.key(0))
    if row == "gemma3_270m":
        import systems
        return systems.real_model(quick=False)
    config, params, _ = real_gemma.load_base("gemma3-270m")
    return config, params


def _full_head_loss(config):
    """The replaced formulation: the LM head on all S + T positions, then the T predicting ones sliced."""
    from workbench import decoder, objectives

    def loss_fn(params, batch, rng=None):
        inputs, targets = batch["inputs"], batch["targets"]
        tokens, _ = objectives.concat_prefix(inputs, targets)
        logits = decoder.forward(params, config, tokens, tokens != objectives.PAD, attention="causal")
        logits = logits[:, inputs.shape[1] - 1:-1]
        return objectives.token_cross_entropy(logits, targets, targets != objectives.PAD)

    return loss_fn


def step(row: str, head: str, batch: int, src: int, tgt: int, quick: bool):
    """Factory (worker process): one trainer step of `row`'s decoder-only seq2seq loss; `head`: 'targets'
    (the library's loss) or 'all' (the replaced formulation). Returns (step, (params, vocabulary))."""
    import numpy as np
    from systems import trainer_step

    from workbench import objectives
    from workbench.tree import count_params

    config, params = _config_and_params(row, quick)
    rng = np.random.RandomState(0)
    data = {"inputs": rng.randint(3, config.vocab_size, size=(batch, src)).astype(np.int32),
            "targets": rng.randint(3, config.vocab_size, size=(batch, tgt)).astype(np.int32)}
    loss = (objectives.decoder_seq2seq_loss(config, attention="causal") if head == "targets"
            else _full_head_loss(config))
    return trainer_step(loss, params, data), (count_params(params), config.vocab_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rows", default="mini,mini_large,gemma3_270m")
    ap.add_argument("--full-vocab", action="store_true", help="add Gemma 3 270M with its whole vocabulary")
    ap.add_argument("--quick", action="store_true", help="tiny config, 1 round of 1 step (smoke)")
    args = ap.parse_args()
    rows = [r for r in args.rows.split(",") if r] + (["gemma3_270m_full"] if args.full_vocab else [])
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {list(ROWS)}")
    if args.quick:
        rows, args.rounds, args.steps = rows[:1], 1, 1
    loaded = common.loaded_before()
    print(f"# before: {common.load_note()}")
    speedups = {}
    for row in rows:
        B, S, T = (2, 8, 8) if args.quick else ((8, 64, 64) if row.startswith("mini") else (4, 64, 64))
        workers = [Worker(f"head on {h}", step, (row, h, B, S, T, args.quick), common.jax_env())
                   for h in ("targets", "all")]
        try:
            interleave(workers, args.rounds, args.steps)
        finally:
            for w in workers:
                w.close()
        n, vocab = workers[0].info
        new, old = workers[0].wall, workers[1].wall
        speedups[row] = old / new
        print(f"\n# {row}: {n:,} params, vocabulary {vocab:,}, batch {B} x ({S} + {T})")
        for w in workers:
            print(f"{w.name:>16}: {w.wall * 1e3:8.1f} ms/step wall, {w.cpu * 1e3:8.1f} ms CPU "
                  f"(setup {w.setup_s:.0f} s)")
        print(f"{'speedup':>16}: {old / new:.2f}x")
    print(f"# after: {common.load_note()}")
    line = " ".join(f"{k}={v:.2f}" for k, v in speedups.items())
    print(f"speedup_head_on_targets {line}" + (" loaded" if loaded else ""), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
