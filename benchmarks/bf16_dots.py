"""bf16 on this CPU: isolated dots of the training step's shapes, then the step itself, fp32 vs bf16.

Dots: fp32 x fp32 -> fp32, bf16 x bf16 -> bf16, and bf16 x bf16 accumulated and returned in fp32
(`preferred_element_type`), the form a CPU with AVX-512 BF16 (`vdpbf16ps`) runs natively. Step: the benchmark
decoder / encoder-decoder through the trainer's `Stepper` (as `train_throughput.py`), in fp32, with bf16
activations (`GemmaConfig.dtype`, dots returning bf16 as `layers.matmul` does), and with bf16 activations whose
`layers.matmul` dots accumulate and return fp32 (patched in this process only), and as the last with the params
stored in bf16 (cast once: the bound of keeping bf16 weight copies, no per-step weight converts; AdamW then
updates bf16 params, so it is a speed bound, not a training recipe). Interleaved; quiet machine only (the load is
printed before and after).
"""

from __future__ import annotations

import argparse
import time

import common
import systems

SHAPES = ((2048, 256, 1024), (2048, 1024, 256), (2048, 256, 8192), (2048, 2048, 2048))  # [M, K] x [K, N]


def dot_rates(shapes, reps: int) -> list[dict]:
    """GFLOP/s (best of `reps`, interleaved) of each dot form per shape."""
    import jax
    import jax.numpy as jnp

    forms = {"fp32": (jnp.float32, None), "bf16->bf16": (jnp.bfloat16, None),
             "bf16->fp32": (jnp.bfloat16, jnp.float32)}
    rows = []
    for M, K, N in shapes:
        fns = {}
        for name, (dt, acc) in forms.items():
            a, b = jnp.ones((M, K), dt), jnp.ones((K, N), dt)
            f = jax.jit(lambda x, y, acc=acc: jnp.dot(x, y, preferred_element_type=acc))
            f(a, b).block_until_ready()
            fns[name] = (f, a, b)
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(reps):
            for name, (f, a, b) in fns.items():
                t = time.perf_counter()
                f(a, b).block_until_ready()
                best[name] = min(best[name], time.perf_counter() - t)
        rows.append({"shape": f"[{M},{K}]x[{K},{N}]", **{k: 2 * M * K * N / v / 1e9 for k, v in best.items()}})
    return rows


def steps(model: str, setup: common.Setup) -> dict:
    """{variant: zero-argument step}: fp32, bf16 activations, bf16 activations with fp32-accumulating dots, and
    the same with bf16-stored params."""
    import jax
    import jax.numpy as jnp

    from workbench import decoder, encdec, layers, objectives

    orig = layers.matmul

    def fp32_acc(x, w, w_is_OxI=False, out_dtype=None):
        if x.dtype == jnp.bfloat16 and out_dtype is None:
            return orig(x, w, w_is_OxI, jnp.float32).astype(x.dtype)
        return orig(x, w, w_is_OxI, out_dtype)

    enc, tgt = systems._batch(setup)

    def bf16(params):
        return jax.tree.map(lambda a: a.astype(jnp.bfloat16) if a.dtype == jnp.float32 else a, params)

    def make(dtype: str | None, patch: bool, bf16_params: bool = False):
        layers.matmul = fp32_acc if patch else orig  # read when the step is traced (its warm-up runs)
        stored = bf16 if bf16_params else (lambda p: p)
        try:
            if model == "decoder":
                cfg = setup.gemma_config()
                cfg = common.bf16_config(cfg, dtype) if dtype else cfg
                return systems.trainer_step(objectives.causal_lm_loss(cfg),
                                            stored(decoder.init(cfg, jax.random.key(0))), {"tokens": enc})
            cfg = setup.encdec_config()
            cfg = common.bf16_config(cfg, dtype) if dtype else cfg
            return systems.trainer_step(objectives.encdec_seq2seq_loss(cfg),
                                        stored(encdec.init(cfg, jax.random.key(0))), {"inputs": enc, "targets": tgt})
        finally:
            layers.matmul = orig

    return {"fp32": make(None, False), "bf16 (bf16 dots)": make("bfloat16", False),
            "bf16 (fp32-acc dots)": make("bfloat16", True), "bf16 params (fp32-acc)": make("bfloat16", True, True)}


def thunk_summary(folder: str) -> dict[str, float]:
    """Seconds per class of XLA CPU thunk (dots = `ynn_fusion`, converts, copies, other fusions by name) in the
    perfetto trace(s) under `folder`; host-side Python frames and executor waits are left out."""
    import collections
    import re

    out: collections.Counter = collections.Counter()
    skip = ("Thunk", "asarray", "Pjit", "PjRt", "ParseArguments", "trace", "wrapper", "__", "Await")
    for _, name, dur in common.trace_events(folder):
        if name.startswith("$") or any(k in name for k in skip):
            continue
        key = re.sub(r"[._]\d+$", "", name)
        key = ("dots (ynn_fusion)" if key.startswith("ynn") else "converts" if "convert" in key else
               "copies / transposes" if "copy" in key or "transpose" in key else key)
        out[key] += dur / 1e6
    return dict(out.most_common())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the steps")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant and round")
    ap.add_argument("--models", default="decoder,encdec")
    ap.add_argument("--quick", action="store_true", help="tiny shapes and model (a smoke run)")
    ap.add_argument("--trace", metavar="DIR", help="also trace 2 steps of each variant (run with XLA_FLAGS="
                    "--xla_cpu_enable_xprof_traceme=true) and print ms per step by thunk class")
    args = ap.parse_args()
    setup = common.QUICK if args.quick else common.FULL
    print(f"# before: {common.load_note()}")
    shapes = ((64, 32, 128),) if args.quick else SHAPES
    for r in dot_rates(shapes, reps=3 if args.quick else 20):
        print(f"dot {r['shape']:22s} " + "  ".join(f"{k} {v:6.1f}" for k, v in r.items() if k != "shape")
              + " GFLOP/s")
    for model in args.models.split(","):
        fns = steps(model, setup)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(1 if args.quick else args.rounds):
            for name, run in fns.items():
                for _ in range(args.steps):
                    t = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            ts = sorted(ts)
            print(f"step {model:8s} {name:22s} median {ts[len(ts) // 2] * 1e3:8.1f} ms  min {ts[0] * 1e3:8.1f} ms")
        if args.trace:
            import jax

            for i, (name, run) in enumerate(fns.items()):
                folder = f"{args.trace}/{model}-{i}"
                with jax.profiler.trace(folder, create_perfetto_trace=True):
                    for _ in range(2):
                        run()
                summary = thunk_summary(folder)
                print(f"trace {model:8s} {name:22s} {sum(summary.values()) / 2 * 1e3:7.1f} ms/step of thunks: "
                      + ", ".join(f"{k} {v / 2 * 1e3:.1f}" for k, v in list(summary.items())[:6]))
    print(f"# after: {common.load_note()}")


if __name__ == "__main__":
    main()
