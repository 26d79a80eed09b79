"""Training throughput: our jitted JAX step vs transformers (eager and torch.compile), same weights and batch.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--steps 2] [--threads 2] [--quick]
        [--models decoder,encdec,real] [--real-batch 4x128] [--bf16]

Prints per system: compile/setup seconds, median wall seconds and CPU-seconds per step, tokens/s, matmul
MFU against the measured JAX fp32 matmul peak; then the ratios. Ours is `workbench.train.Stepper`, the update
`train` runs. `real`: one step of Gemma 3 270M (the registry package) with its vocabulary pruned to a task's
texts, ours vs transformers' Gemma3ForCausalLM on the same pruned weights (written with `save_hf_gemma3`) and
batch; its ratio line `ratio_vs_torch_compile_real gemma3_270m=X` comes before the last line, which reads
`ratio_vs_torch_compile decoder=X encdec=Y` (ours tokens/s over torch.compile's).
"""

from __future__ import annotations

import argparse
import datetime
import os

import common
import systems
from common import Worker, interleave, load_note


def _flops_per_step(setup: common.Setup, model: str, real: tuple | None = None) -> tuple[float, int]:
    """(training matmul FLOPs per step, tokens per step) from workbench.flops; `real` = (config, batch, seq)."""
    from workbench import flops
    B, L = setup.batch, setup.seq
    if model == "real":
        config, B, L = real
        return B * L * flops.train_flops_per_token(config, L), B * L
    if model == "decoder":
        return B * L * flops.train_flops_per_token(setup.gemma_config(), L), B * L
    return B * flops.encdec_flops_per_example(setup.encdec_config(), L, L, train=True), 2 * B * L


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per system per round")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads / JAX cores")
    ap.add_argument("--quick", action="store_true",
                    help="tiny model, one round of one step, no torch.compile unless --compile (smoke test)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="include torch.compile (default: yes, except with --quick; cold compiles take minutes "
                         "on a loaded 2-core machine)")
    ap.add_argument("--devices", type=int, default=1,
                    help="JAX host devices (default 1, as the notebooks run: one device whose dots use all cores; "
                         "N > 1: data parallel, one single-threaded device per core)")
    ap.add_argument("--models", default="decoder,encdec,real")
    ap.add_argument("--real-batch", default="4x128", help="batch x sequence length of the real Gemma 3 row")
    ap.add_argument("--bf16", action="store_true",
                    help="mixed precision on both sides: ours bf16 activations with the trainer's bf16 compute "
                         "(fp32 params), torch under bf16 autocast; the ratio lines gain the suffix _bf16")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                    help="gpu: only our step, bf16, MFU against the H100 bf16 peak (989 TFLOP/s); gpu_mfu.py "
                         "runs more cases")
    args = ap.parse_args(argv)
    setup = common.QUICK if args.quick else common.FULL
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    use_compile = (not args.quick) if args.compile is None else args.compile
    if args.device == "gpu":
        import gpu_mfu
        gpu_mfu.main(["--quick"] if args.quick else ["--steps", str(max(steps * rounds, 5))])
        return

    print(f"# train_throughput {datetime.datetime.now().isoformat(timespec='seconds')}  setup={setup}"
          f"  precision={'bf16 mixed (both sides)' if args.bf16 else 'fp32'}")
    loaded = common.loaded_before()
    print(f"# before: {load_note()}" + ("  LOADED: load above the core count, figures not quiet" if loaded else ""))
    cache = common.tmpdir("inductor-")
    tenv = common.torch_env(args.threads, cache)
    jenv = common.jax_env(args.devices, eigen=args.devices == 1)
    peak, peak_cpu = systems.jax_matmul_peak()
    print(f"jax fp32 matmul peak (2048^3, best of 10): {peak / 1e9:.1f} GFLOP/s wall, "
          f"{peak_cpu / 1e9:.1f} GFLOP per CPU-second")

    ratios: dict[str, float] = {}
    real_b, real_s = (2, 32) if args.quick else map(int, args.real_batch.lower().split("x"))
    for model in args.models.split(","):
        ckpt = common.tmpdir(f"bench-{model}-")
        shape: common.Setup | tuple[int, int] = setup
        real = None  # (config, batch, seq) of the real Gemma 3 row
        if model == "real":
            config = systems.save_real_checkpoint(args.quick, ckpt)
            shape, real = (real_b, real_s), (config, real_b, real_s)
            print(f"\n# real: {'tiny random Gemma 3 (quick)' if args.quick else 'Gemma 3 270M'}, vocabulary pruned "
                  f"to {config.vocab_size} ids ({systems.REAL_TASK} texts), {config.num_layers} layers, width "
                  f"{config.embed_dim}")
            ours = Worker("ours", systems.jax_real_train_step, (ckpt, real_b, real_s, args.bf16), jenv)
        else:
            systems.save_checkpoint(setup, model, ckpt)
            ours = Worker("ours", systems.jax_train_step, (setup, model, args.bf16), jenv)
        workers = [ours, Worker("torch-eager", systems.torch_train_step,
                                (shape, model, ckpt, args.threads, False, args.bf16), tenv)]
        if use_compile:
            workers.append(Worker("torch-compile", systems.torch_train_step,
                                  (shape, model, ckpt, args.threads, True, args.bf16), tenv))
        try:
            interleave(workers, rounds, steps)
        finally:
            for w in workers:
                w.close()
        fl, tokens = _flops_per_step(setup, model, real)
        b, L = (real_b, real_s) if real else (setup.batch, setup.seq)
        print(f"\n## {model}: {tokens} tokens/step ({b} x {L}"
              f"{' enc + dec' if model == 'encdec' else ''}), {fl / 1e9:.1f} GFLOP/step (workbench.flops)")
        print(f"{'system':14s} {'setup_s':>8s} {'wall_s':>8s} {'cpu_s':>8s} {'cpu/wall':>8s} {'tok/s':>9s} "
              f"{'MFU':>6s} {'MFU_cpu':>7s}")
        tps = {}
        for w in workers:
            tps[w.name] = tokens / w.wall
            print(f"{w.name:14s} {w.setup_s:8.1f} {w.wall:8.3f} {w.cpu:8.3f} {w.cpu / w.wall:8.2f} "
                  f"{tps[w.name]:9.0f} {fl / w.wall / peak:6.1%} {fl / w.cpu / peak_cpu:7.1%}")
        ratios[model] = tps["ours"] / tps.get("torch-compile", float("nan"))
        print(f"ours/eager {tps['ours'] / tps['torch-eager']:.2f}  ours/compile {ratios[model]:.2f}  "
              f"(n={len(workers[0].times)} steps each, medians)")
    print("MFU: matmul FLOPs (workbench.flops) per wall second over the wall peak; MFU_cpu: per CPU-second "
          "over the matmul's FLOP per CPU-second (load-robust; a 2-thread step can reach at most 100%)")
    print(f"\n# after: {load_note()}")
    suffix = "_bf16" if args.bf16 else ""
    if "real" in ratios:
        print(f"ratio_vs_torch_compile_real{suffix} gemma3_270m={ratios.pop('real'):.2f}"
              + (" loaded" if loaded else ""))
    print(common.ratio_line(f"ratio_vs_torch_compile{suffix}", ratios, loaded))


if __name__ == "__main__":
    main()
