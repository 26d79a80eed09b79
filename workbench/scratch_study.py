"""From scratch vs adapted (`notebooks/04_scratch.ipynb`): the same encoder-decoder shape trained from random
weights or initialised from a pretrained stand-in, PrefixLM, with held-out loss curves against total FLOPs.

`budgets` sets each size's compute-matched scratch steps (pretraining + adaptation FLOPs of the adapted model,
divided by one scratch step) and the steps actually run under `max_scratch_steps`; `run_curve` trains one
(size, kind, seed) with its evaluation curve stored beside the checkpoint, so a resumed or finished run replays
no evaluation; `claim_metrics` gives the per-seed numbers behind claims T11 and T12.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from workbench import adapt, config, evaluate, flops, objectives, recipes, results, zoo
from workbench import notebook as nb
from workbench.clock import Clock
from workbench.models import model_for
from workbench.train import TrainConfig, train

KINDS = ("adapted", "scratch")


def budgets(P: Mapping[str, Any], scale: str, pretrain_metrics: Mapping[str, Any]) -> Any:
    """Per size: pretraining FLOPs, FLOPs per step, adaptation steps, compute-matched scratch steps, the scratch
    steps run (capped by `max_scratch_steps`) and whether the cap binds."""
    import pandas as pd

    half = P["seq_len"] // 2
    rows = []
    for role in P["sizes"]:
        dec_cfg, _ = zoo.load(f"{scale}/decoder-{role}")
        step_flops = P["batch"] * flops.encdec_flops_per_example(config.EncDecConfig(dec_cfg, dec_cfg), half, half,
                                                                 train=True)
        total = pretrain_metrics[role]["train_flops"] + P["adapt_steps"] * step_flops
        matched = int(np.ceil(total / step_flops))
        cap = P["max_scratch_steps"] or matched
        rows.append({"size": role, "pretrain FLOPs": pretrain_metrics[role]["train_flops"],
                     "FLOPs per step": step_flops, "adapt steps": P["adapt_steps"], "matched scratch steps": matched,
                     "scratch steps run": min(matched, cap), "cap binds": matched > cap})
    return pd.DataFrame(rows).set_index("size")


def run_curve(P: Mapping[str, Any], scale: str, role: str, kind: str, seed: int, steps: int, rows_NxL: np.ndarray,
              val: Mapping[str, np.ndarray], clock: Clock | None = None) -> list[tuple[int, float]]:
    """Train one (size, kind, seed) for `steps` PrefixLM steps on `rows_NxL` (adapted runs continue at the
    preset's `adapt_train` schedule) and return its held-out loss curve [(step, loss)], evaluated at step 0,
    every `eval_every[kind]` steps and at the end; resumable (checkpoint and curve under `nb.checkpoint_dir`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    dec_cfg, dec_params = zoo.load(f"{scale}/decoder-{role}")
    ed_cfg = config.EncDecConfig(dec_cfg, dec_cfg)
    init = (adapt.decoder_to_encdec(dec_params, ed_cfg) if kind == "adapted"
            else adapt.from_scratch(ed_cfg, jax.random.key(seed)))
    loss_fn = objectives.encdec_seq2seq_loss(ed_cfg)
    out = nb.checkpoint_dir(f"scratch-{role}-{kind}-s{seed}", {**P, "seed": seed})
    saved = out / "eval_curve.json"  # beside the checkpoint: a resumed (or finished) run replays no evaluation
    curve = {int(s): loss for s, loss in results.read_json(saved)} if saved.exists() else {}

    def evaluate_at(step: int, params: Any) -> None:
        curve[step] = evaluate.eval_loss(loss_fn, params, val)["loss"]
        results.write_json(saved, sorted(curve.items()))

    def every(step: int, record: dict, state: dict) -> None:
        if (step + 1) % P["eval_every"][kind] == 0 or step + 1 == steps:
            evaluate_at(step + 1, state["params"])

    if 0 not in curve:
        evaluate_at(0, init)
    half = rows_NxL.shape[1] // 2  # PrefixLM: the first half of each row is the encoder input
    schedule = {**P["train"], **(P["adapt_train"] if kind == "adapted" else {})}  # adapted: continue
    clock = clock or Clock()
    with clock("train") as span:  # includes the evaluations of the curve (callbacks)
        res = train(loss_fn, init, recipes.prefix_lm_batches(rows_NxL, P["batch"], seed),
                    TrainConfig(steps=steps, seed=seed, **schedule), callbacks=[every], out_dir=str(out))
        span.flops = res.steps_run * P["batch"] * model_for(ed_cfg).train_flops_per_example(
            half, rows_NxL.shape[1] - half)
    if steps not in curve:  # finished earlier, but stopped between its last checkpoint and the curve's write
        evaluate_at(steps, res.params)
    return sorted(curve.items())


def at_fraction(curve: Sequence[tuple[int, float]], frac: float) -> float:
    """The curve's loss at the evaluation nearest `frac` of its last step."""
    steps = np.array([s for s, _ in curve])
    return curve[int(np.argmin(np.abs(steps - frac * steps[-1])))][1]


def claim_metrics(curves: Mapping[tuple[str, str, int], Sequence[tuple[int, float]]], sizes: Sequence[str],
                  seeds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Per size, per seed: 'adapted_advantage' = final loss(scratch) − loss(adapted) (T11),
    'adapt_fraction_of_gain_at_25pct' = the adapted run's loss drop by the evaluation nearest a quarter of its
    steps over its whole drop (0 when it did not improve; T12), and 'final_loss' per kind."""
    out: dict[str, dict[str, Any]] = {"adapted_advantage": {}, "final_loss": {}, "adapt_fraction_of_gain_at_25pct": {}}
    for role in sizes:
        adv, fr = [], []
        for seed in seeds:
            a, s = curves[(role, "adapted", seed)], curves[(role, "scratch", seed)]
            adv.append(float(s[-1][1] - a[-1][1]))
            gain = a[0][1] - a[-1][1]
            fr.append(float((a[0][1] - at_fraction(a, 0.25)) / gain) if gain > 0 else 0.0)
        out["adapted_advantage"][role] = adv
        out["adapt_fraction_of_gain_at_25pct"][role] = fr
        out["final_loss"][role] = {k: [float(curves[(role, k, seed)][-1][1]) for seed in seeds] for k in KINDS}
    return out
