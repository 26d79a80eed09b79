"""Batch-1 greedy generation with the weights sharded over two host devices, against one device.

The generation profile (`benchmarks/README.md`) found batch-1 time in matrix-vector products that XLA's CPU runs on
one thread, and named one untried lever: split them over both cores with two host devices
(`--xla_force_host_platform_device_count=2`). This script places the benchmark decoder's parameters on a 2-device
mesh (`workbench.train.sharding`: a 'tensor' mesh axis and logical-axis rules, as the trainer shards) and calls
`workbench.generate.generate_decoder` unchanged (jit partitions it from the input shardings):

- `one`: one device (the notebooks' setting);
- `head`: two devices, the tied embedding / LM head sharded over the vocabulary;
- `head+mlp`: two devices, the head as above and each MLP sharded Megatron-style (gate / up over the hidden
  units, down over its input), one all-reduce per layer.

Each variant runs in its own worker process, interleaved; greedy tokens must equal the one-device tokens.

    .venv/bin/python benchmarks/generate_sharded.py --rounds 5 --steps 3      # ~2 min on 2 quiet cores
    .venv/bin/python benchmarks/generate_sharded.py --quick

Last line: `generate_sharded_ms_per_token one=X head=Y head+mlp=Z`.
"""

from __future__ import annotations

import argparse
import os

import common
from common import Worker, interleave

# variant -> (host devices, logical-axis rules of `workbench.train.sharding` on a 'tensor' mesh axis)
VARIANTS = {"one": (1, {}), "head": (2, {"vocab": "tensor"}), "head+mlp": (2, {"vocab": "tensor", "mlp": "tensor"})}


def step(variant: str, setup: common.Setup, prompt_len: int, new_tokens: int):
    """Factory (worker process): one greedy generation per call; returns (step, (tokens, sharded matrices))."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from workbench import decoder, generate
    from workbench.train import sharding as shd

    cfg = setup.gemma_config()
    devices, rules = VARIANTS[variant]
    params = shd.shard_params(decoder.init(cfg, jax.random.key(0)), shd.make_mesh(tensor=devices), rules)
    prompt = jnp.asarray(np.random.RandomState(0).randint(3, cfg.vocab_size, size=(1, prompt_len)), jnp.int32)
    out = [None]

    def run() -> None:
        out[0] = np.asarray(generate.generate_decoder(params, cfg, prompt, new_tokens))

    sharded = sum(not x.sharding.is_fully_replicated for x in jax.tree.leaves(params))
    run()
    run()
    return run, (out[0][0].tolist(), sharded)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="tiny config, 1 round of 1 generation (smoke)")
    args = ap.parse_args()
    setup = common.QUICK if args.quick else common.FULL
    if args.quick:
        args.rounds, args.steps, args.prompt, args.new = 1, 1, 8, 8
    loaded = common.loaded_before()
    print(f"# before: {common.load_note()}")
    workers = [Worker(v, step, (v, setup, args.prompt, args.new), common.jax_env(devices=n))
               for v, (n, _) in VARIANTS.items()]
    try:
        interleave(workers, args.rounds, args.steps)
    finally:
        for w in workers:
            w.close()
    ref = workers[0].info[0]
    print(f"# decoder (benchmark config), batch 1, prompt {args.prompt}, {args.new} new tokens, greedy; "
          f"{args.rounds} rounds x {args.steps} generations")
    for w in workers:
        tokens, sharded = w.info
        same = sum(a == b for a, b in zip(tokens, ref, strict=True)) / len(ref)
        print(f"{w.name:>9}: {w.wall / args.new * 1e3:7.3f} ms/token (setup {w.setup_s:.0f} s), {sharded} sharded "
              f"weight matrices, tokens equal to one device's: {same:.0%}")
    print(f"# after: {common.load_note()}")
    line = " ".join(f"{w.name}={w.wall / args.new * 1e3:.3f}" for w in workers)
    print(f"generate_sharded_ms_per_token {line}" + (" loaded" if loaded else ""), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
