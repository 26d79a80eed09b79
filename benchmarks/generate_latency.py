"""Batch-1 greedy generation latency: `workbench.generate.generate` (jitted, KV cache) vs transformers
`generate` (use_cache, greedy), decoder-only and encoder-decoder, same weights.

    .venv/bin/python benchmarks/generate_latency.py [--rounds 5] [--steps 2] [--prompt 64] [--new 128] [--quick]

Both sides produce exactly `--new` tokens (ours: EOS id set to an impossible id; HF: min_new_tokens =
max_new_tokens). Prints median latency per generation, tokens/s, the inference FLOPs (workbench.flops)
and whether the greedy tokens agree. Last line: `ratio_vs_hf_generate decoder=X encdec=Y` (ours tokens/s
over HF's).
"""

from __future__ import annotations

import argparse
import datetime
import os

import common
import systems
from common import Worker, interleave, load_note


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="generations per system per round")
    ap.add_argument("--prompt", type=int, default=64, help="prompt (encoder input) length")
    ap.add_argument("--new", type=int, default=128, help="generated tokens")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument("--quick", action="store_true", help="tiny model, short run (smoke test)")
    ap.add_argument("--models", default="decoder,encdec")
    args = ap.parse_args(argv)
    setup = common.QUICK if args.quick else common.FULL
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    prompt, new = (8, 8) if args.quick else (args.prompt, args.new)

    from workbench import flops
    print(f"# generate_latency {datetime.datetime.now().isoformat(timespec='seconds')}  setup={setup}  "
          f"batch 1, prompt {prompt}, new tokens {new}")
    loaded = common.loaded_before()
    print(f"# before: {load_note()}" + ("  LOADED: load above the core count, figures not quiet" if loaded else ""))
    tenv = common.torch_env(args.threads, common.tmpdir("inductor-"))
    ratios: dict[str, float] = {}
    for model in args.models.split(","):
        ckpt = common.tmpdir(f"gen-{model}-")
        systems.save_checkpoint(setup, model, ckpt)
        cfg = setup.gemma_config() if model == "decoder" else setup.encdec_config()
        workers = [Worker("ours", systems.jax_generate, (setup, model, prompt, new), common.jax_env(args.threads)),
                   Worker("hf-generate", systems.torch_generate, (setup, model, ckpt, args.threads, prompt, new),
                          tenv)]
        try:
            interleave(workers, rounds, steps)
        finally:
            for w in workers:
                w.close()
        ours, hf = workers[0].info, workers[1].info
        agree = sum(a == b for a, b in zip(ours, hf, strict=False)) / max(len(ours), 1)
        fl = flops.generation_flops(cfg, prompt, new)
        print(f"\n## {model}: {fl / 1e9:.2f} GFLOP per generation (workbench.flops.generation_flops); "
              f"greedy tokens agree on {agree:.0%} of positions ({len(ours)} vs {len(hf)} tokens)")
        print(f"{'system':12s} {'setup_s':>8s} {'latency_s':>10s} {'cpu_s':>8s} {'ms/token':>9s} {'tok/s':>8s}")
        tps = {}
        for w in workers:
            tps[w.name] = new / w.wall
            print(f"{w.name:12s} {w.setup_s:8.1f} {w.wall:10.3f} {w.cpu:8.3f} {1e3 * w.wall / new:9.2f} "
                  f"{tps[w.name]:8.0f}")
        ratios[model] = tps["ours"] / tps["hf-generate"]
        print(f"ours/hf {ratios[model]:.2f}  (n={len(workers[0].times)} generations each, medians)")
    print(f"\n# after: {load_note()}")
    print(common.ratio_line("ratio_vs_hf_generate", ratios, loaded))


if __name__ == "__main__":
    main()
