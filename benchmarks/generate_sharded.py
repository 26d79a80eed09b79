"""Batch-1 greedy generation with the weights sharded over two host devices, against one device.

The generation profile (`benchmarks/README.md`) found batch-1 time in matrix-vector products that XLA's CPU runs on
one thread, and named one untried lever: split them over both cores with two host devices
(`--xla_force_host_platform_device_count=2`). This script places the benchmark decoder's parameters on a 2-device
mesh and calls `workbench.generate.generate_decoder` unchanged (jit partitions it from the input shardings):

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

VARIANTS = {"one": 1, "head": 2, "head+mlp": 2}


def _sharding(mesh, variant: str, path: str, ndim: int):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    if variant != "one" and path.startswith("embedder/embedding"):
        return NamedSharding(mesh, P("x", None))
    if variant == "head+mlp" and ("gate_proj" in path or "up_proj" in path):
        return NamedSharding(mesh, P(*[None] * (ndim - 1), "x"))
    if variant == "head+mlp" and "down_proj" in path:
        return NamedSharding(mesh, P("x", *[None] * (ndim - 1)))
    return NamedSharding(mesh, P())


def step(variant: str, setup: common.Setup, prompt_len: int, new_tokens: int):
    """Factory (worker process): one greedy generation per call; returns (step, first tokens)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    from workbench import decoder, generate

    cfg = setup.gemma_config()
    mesh = Mesh(np.array(jax.devices()), ("x",))
    params = decoder.init(cfg, jax.random.key(0))
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: jax.device_put(x, _sharding(mesh, variant, jax.tree_util.keystr(p, simple=True, separator="/"),
                                                 x.ndim)), params)
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
               for v, n in VARIANTS.items()]
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
