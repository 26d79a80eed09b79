"""Batch-1 greedy generation of the benchmark decoder / encoder-decoder under per-executable XLA CPU options.

Each variant compiles `workbench.generate`'s jitted program with `compiled = lowered.compile(compiler_options)`
(options of that executable only: training and the rest of the process keep the defaults), then the variants
run interleaved, `--rounds` x `--steps` generations each; prints the median ms per token and whether the tokens
equal the default's. Quiet machine only (the load is printed before and after).
"""

from __future__ import annotations

import argparse
import time

import common

VARIANTS: dict[str, dict] = {
    "default": {},
    "no-multi-thread-eigen": {"xla_cpu_multi_thread_eigen": False},
    "no-xnnpack": {"xla_cpu_use_xnnpack": False},
    "concurrency-scheduler": {"xla_cpu_enable_concurrency_optimized_scheduler": True},
    "no-fusion-emitters": {"xla_cpu_use_fusion_emitters": False},
    "no-thunk-runtime": {"xla_cpu_use_thunk_runtime": False},
    "small-while-1MB": {"xla_cpu_small_while_loop_byte_threshold": 1 << 20},
    "bf16": {},  # not an XLA option: weights and activations in bf16 (half the bytes per token)
}


def compiled_generation(model: str, setup: common.Setup, prompt_len: int, new_tokens: int, options: dict,
                        bf16: bool = False):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from workbench import decoder, encdec, generate

    cfg = setup.gemma_config() if model == "decoder" else setup.encdec_config()
    params = (decoder if model == "decoder" else encdec).init(cfg, jax.random.key(0))
    if bf16:
        params = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x, params)
        half = dict(dtype="bfloat16", param_dtype="bfloat16")
        cfg = (cfg.replace(**half) if model == "decoder" else
               cfg.replace(encoder=cfg.encoder.replace(**half), decoder=cfg.decoder.replace(**half)))
    prompt = jnp.asarray(np.random.RandomState(1).randint(3, setup.vocab, size=(1, prompt_len)).astype(np.int32))
    mask = jnp.ones(prompt.shape, bool)
    rng = jax.random.key(0)
    static = dict(max_new_tokens=new_tokens, sampling=(True, 1.0, None, None), eos_ids=(-1,), pad_id=0)
    if model == "decoder":
        lowered = generate._generate_decoder.lower(params, cfg, prompt, mask, rng, **static)
    else:
        lowered = generate._generate_encdec.lower(params, cfg, prompt, mask, rng, bos_id=2, **static)
    compiled = lowered.compile(compiler_options=options or None)
    run = lambda: compiled(params, prompt, mask, rng).block_until_ready()  # noqa: E731
    run()
    return run, np.asarray(run())[0].tolist()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="decoder", choices=["decoder", "encdec"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="tiny models, two variants, one generation each")
    ap.add_argument("--trace", default=None, help="folder: trace 3 generations of the first variant and print "
                    "the top ops (set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true to see XLA's thunks)")
    args = ap.parse_args(argv)
    setup = common.QUICK if args.quick else common.FULL
    if args.quick:
        args.variants, args.rounds, args.steps, args.prompt, args.new = ["default", "bf16"], 1, 1, 8, 4
    print(f"# before: {common.load_note()}", flush=True)
    runs, toks = {}, {}
    for name in args.variants:
        try:
            runs[name], toks[name] = compiled_generation(args.model, setup, args.prompt, args.new,
                                                         VARIANTS[name], bf16=name == "bf16")
        except Exception as e:  # an option this XLA does not know
            print(f"{name}: not compiled: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
    if args.trace:
        import jax
        from gpu_mfu import trace_summary
        first = next(iter(runs))
        with jax.profiler.trace(args.trace, create_perfetto_trace=True):
            for _ in range(3):
                runs[first]()
        print(trace_summary(args.trace, top=40), flush=True)
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            for _ in range(args.steps):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
    base = common.median(times["default"]) if "default" in times else None
    for name, ts in times.items():
        ms = 1e3 * common.median(ts) / args.new
        rel = f"  x{base / common.median(ts):.2f} vs default" if base else ""
        ref = toks.get("default", toks[name])
        agree = sum(a == b for a, b in zip(toks[name], ref, strict=True)) / len(ref)
        print(f"{args.model} {name:24s} {ms:6.3f} ms/token{rel}  tokens equal to default's: {agree:.0%}")
    print(f"# after: {common.load_note()}")


if __name__ == "__main__":
    main()
