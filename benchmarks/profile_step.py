"""Where the time of our training step goes: the benchmark step (`systems.jax_train_step`) timed on variants of
its config that each remove or resize one part, interleaved, plus the AdamW update and the forward pass alone.

    .venv/bin/python benchmarks/profile_step.py --rounds 5          # ~4 min on 2 quiet cores
    .venv/bin/python benchmarks/profile_step.py --quick             # smoke

Reading (decoder, batch 8 x 256): per layer = (t[4 layers] - t[2 layers]) / 2; embedding + LM head + loss =
t[4 layers] - 4 x per layer; soft-caps = t - t[no soft-caps]; vocabulary = t[8k] - t[4k] (x2 ~ the LM head);
AdamW = the optimizer update alone on the step's parameters; forward = the loss without its gradient.
Each part's matmul FLOP/s is set against the in-run 2048^3 matmul.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import common

STEP, HALF_LAYERS, NO_CAPS, HALF_VOCAB = "the step", "half the layers", "no soft-caps", "half the vocabulary"


def variants(base: common.Setup) -> dict[str, dict]:
    return {STEP: {}, HALF_LAYERS: {"layers": base.layers // 2}, NO_CAPS: {"softcap": False},
            HALF_VOCAB: {"vocab": base.vocab // 2}}


@dataclasses.dataclass(frozen=True)
class ProfSetup(common.Setup):
    softcap: bool = True

    def gemma_config(self):
        cfg = super().gemma_config()
        return cfg if self.softcap else cfg.replace(attn_logits_soft_cap=None, final_logit_soft_cap=None)


def _time(run, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - t0) / steps


def _adamw_alone(setup: ProfSetup):
    import jax
    import optax
    from systems import place

    from workbench import decoder

    params, _ = place(decoder.init(setup.gemma_config(), jax.random.key(0)))
    tx = optax.adamw(1e-4, weight_decay=0.01)
    state = [params, tx.init(params)]
    grads = jax.tree.map(lambda x: x * 1e-3, params)  # same placement as the params

    @jax.jit
    def upd(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    def run() -> None:
        state[0], state[1] = upd(state[0], state[1], grads)
        jax.block_until_ready(state[0])

    for _ in range(2):
        run()
    return run


def _forward_alone(setup: ProfSetup):
    import jax
    import jax.numpy as jnp
    import optax
    from systems import _batch, place

    from workbench import decoder

    cfg = setup.gemma_config()
    params, (enc,) = place(decoder.init(cfg, jax.random.key(0)), jnp.asarray(_batch(setup)[0]))

    @jax.jit
    def loss(p, x):
        return optax.softmax_cross_entropy_with_integer_labels(decoder.forward(p, cfg, x)[:, :-1], x[:, 1:]).mean()

    def run() -> None:
        loss(params, enc).block_until_ready()

    run()
    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", type=int, default=1, help="JAX host devices (1, as the benchmark and notebooks)")
    args = ap.parse_args(argv)
    for k, v in common.jax_env(args.devices, eigen=args.devices == 1).items():
        os.environ.setdefault(k, v)
    import systems
    from systems import jax_train_step

    from workbench import flops

    base = ProfSetup(**dataclasses.asdict(common.QUICK if args.quick else common.FULL))
    print(common.load_note(), f"XLA_FLAGS={os.environ.get('XLA_FLAGS')}", flush=True)
    loaded = common.loaded_before()  # the load before measuring decides whether the figures are quiet
    peak, _ = systems.jax_matmul_peak()
    runs = {name: jax_train_step(dataclasses.replace(base, **kw), "decoder") for name, kw in variants(base).items()}
    runs["AdamW update alone"] = _adamw_alone(base)
    runs["forward (loss) alone"] = _forward_alone(base)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        order = list(runs)[r % len(runs):] + list(runs)[: r % len(runs)]
        for name in order:
            times[name].append(_time(runs[name], args.steps))
    t = {k: common.median(v) for k, v in times.items()}
    tokens = base.batch * base.seq

    def fl(setup: ProfSetup) -> float:
        return tokens * flops.train_flops_per_token(setup.gemma_config(), setup.seq)

    step, half = t[STEP], dataclasses.replace(base, layers=base.layers // 2)
    n_off = base.layers - half.layers
    per_layer = (step - t[HALF_LAYERS]) / n_off
    layer_flops = (fl(base) - fl(half)) / n_off
    rest = step - base.layers * per_layer
    parts = {
        f"{base.layers} blocks (attention + MLP)": (base.layers * per_layer, base.layers * layer_flops),
        "embedding + LM head + loss + rest": (rest, fl(base) - base.layers * layer_flops),
        "  of which the soft-caps": (step - t[NO_CAPS], 0.0),
        "  of which half the vocabulary": (step - t[HALF_VOCAB],
                                           fl(base) - fl(dataclasses.replace(base, vocab=base.vocab // 2))),
        "AdamW update (alone)": (t["AdamW update alone"], 0.0),
        "forward pass (alone)": (t["forward (loss) alone"], fl(base) / 3),
    }
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; step {step * 1e3:.1f} ms = {tokens / step:,.0f} tokens/s "
          f"({fl(base) / step / 1e9:.1f} GFLOP/s, {fl(base) / step / peak:.0%} of peak)")
    print(f"{'part':45s} {'ms':>8s} {'of step':>8s} {'GFLOP/s':>8s}")
    for name, (sec, f) in parts.items():
        rate = f"{f / sec / 1e9:8.1f}" if f and sec > 0 else f"{'-':>8s}"
        print(f"{name:45s} {sec * 1e3:8.1f} {sec / step:8.0%} {rate}")
    for name, sec in t.items():
        print(f"raw {name:41s} {sec * 1e3:8.1f} ms")
    print(common.load_note(), flush=True)
    share = {k: parts[k][0] / step for k in parts}
    print(f"profile step_ms={step * 1e3:.1f} blocks={share[list(parts)[0]]:.3f} "
          f"head_loss_rest={share['embedding + LM head + loss + rest']:.3f} "
          f"softcaps={share['  of which the soft-caps']:.3f} adamw={share['AdamW update (alone)']:.3f} "
          f"forward={share['forward pass (alone)']:.3f}" + (" loaded" if loaded else ""))


if __name__ == "__main__":
    main()
