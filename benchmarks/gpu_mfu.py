"""MFU of bf16 training steps on one accelerator, through the trainer's own step (`workbench.train.Stepper`).

Cases (`--case`, several allowed):
- `L-L`: the T5Gemma L-L encoder-decoder (24 + 24 layers, d 1024), vocab 32k, batch 16 x (1024 + 1024),
  loss `objectives.encdec_seq2seq_loss`;
- `2B`: the Gemma 2 2B decoder (26 layers, d 2304, its 256k vocabulary), batch 4 x 2048,
  loss `objectives.causal_lm_loss`;
- `1B`: the Gemma 3 1B decoder (26 layers, d 1152, 262k vocabulary), batch 8 x 2048.
The step is the trainer's (`TrainConfig(compute_dtype='bfloat16')`: fp32 parameters and AdamW state, the
parameters cast to bf16 inside the loss, activations bf16), the loss fetched to the host each step as `train`
does. FLOPs come from `workbench.flops` (matmuls only, forward + backward = 3 x forward). MFU is printed
against the H100/H200 dense bf16 peak (989 TFLOP/s) and against a bf16 8192^3 matmul measured in the same run.
`--quick` runs a tiny config on any device (to check the code path on CPU).
`--trace DIR` writes a `jax.profiler` trace of two steps of each case (perfetto JSON) for a per-kernel profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import traceback

H100_BF16_PEAK = 989e12


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "decoder" | "encdec"
    preset: str
    batch: int
    seq: int  # decoder-only length; encoder-decoder: seq encoder + seq decoder tokens
    vocab: int | None = None  # None: the preset's own vocabulary


CASES = {
    "L-L": Case("L-L", "encdec", "L-L", 16, 1024, 32_768),
    "2B": Case("2B", "decoder", "2B", 4, 2048),
    "1B": Case("1B", "decoder", "1B", 8, 2048),
}
QUICK = Case("quick", "encdec", "tiny-tiny", 2, 32)


def _config(case: Case):
    import common

    from workbench.config import decoder_preset, encdec_preset

    over = {} if case.vocab is None else {"vocab_size": case.vocab}
    preset = encdec_preset if case.kind == "encdec" else decoder_preset
    return common.bf16_config(preset(case.preset, **over))


def step_flops(case: Case, cfg) -> tuple[float, int]:
    """(matmul FLOPs of one training step, tokens per step)."""
    from workbench import flops

    if case.kind == "encdec":
        fl = case.batch * flops.encdec_flops_per_example(cfg, case.seq, case.seq, train=True)
        return fl, 2 * case.batch * case.seq
    tokens = case.batch * case.seq
    return tokens * flops.train_flops_per_token(cfg, case.seq, "causal"), tokens


def bf16_matmul_peak(n: int = 8192, reps: int = 10) -> float:
    """Best FLOP/s of an n^3 bf16 matmul on the default device (this device's practical ceiling)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def run_case(case: Case, steps: int, trace_dir: str | None = None) -> dict:
    import jax
    import numpy as np

    from workbench import decoder, encdec, objectives
    from workbench.train import Stepper, TrainConfig

    cfg = _config(case)
    t0 = time.perf_counter()
    if case.kind == "encdec":
        loss_fn, init, vocab = objectives.encdec_seq2seq_loss(cfg), encdec.init, cfg.decoder.vocab_size
    else:
        loss_fn, init, vocab = objectives.causal_lm_loss(cfg), decoder.init, cfg.vocab_size
    params = jax.jit(init, static_argnums=0)(cfg, jax.random.key(0))
    rng = np.random.RandomState(0)
    tok = lambda: rng.randint(3, vocab, size=(case.batch, case.seq)).astype(np.int32)  # noqa: E731
    raw = {"inputs": tok(), "targets": tok()} if case.kind == "encdec" else {"tokens": tok()}
    tc = TrainConfig(learning_rate=1e-4, weight_decay=0.01, warmup_steps=0, schedule="constant",
                     compute_dtype="bfloat16")
    stepper = Stepper(loss_fn, tc, params)
    state = stepper.init(params)
    del params
    batch = stepper.batch(raw)
    losses = []
    for _ in range(2):  # compile + one warm step
        state, mets = stepper(state, batch)
        losses.append(float(mets["loss"]))
    setup_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, mets = stepper(state, batch)
        losses.append(float(mets["loss"]))
        times.append(time.perf_counter() - t)
    if trace_dir:
        with jax.profiler.trace(f"{trace_dir}/{case.name}", create_perfetto_trace=True):
            for _ in range(2):
                state, mets = stepper(state, batch)
                float(mets["loss"])
    wall = sorted(times)[len(times) // 2]
    fl, tokens = step_flops(case, cfg)
    n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    return {"case": case.name, "params_M": n_params / 1e6, "tokens_per_step": tokens, "setup_s": setup_s,
            "median_step_s": wall, "min_step_s": min(times), "tokens_per_s": tokens / wall,
            "tflops": fl / wall / 1e12, "mfu_989": fl / wall / H100_BF16_PEAK,
            "loss_first": losses[0], "loss_last": losses[-1]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", nargs="+", default=["L-L"], choices=sorted(CASES))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="a tiny encoder-decoder (checks the path on CPU)")
    ap.add_argument("--trace", default=None, help="folder for a jax.profiler trace of two steps per case")
    args = ap.parse_args(argv)
    import jax

    dev = jax.devices()[0]
    print(f"jax {jax.__version__}; device {dev.device_kind} ({dev.platform}), {jax.device_count()} device(s)",
          flush=True)
    peak = bf16_matmul_peak(512 if args.quick else 8192)
    print(f"bf16_matmul_peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    for case in ([QUICK] if args.quick else [CASES[c] for c in args.case]):
        try:
            r = run_case(case, args.steps, args.trace)
        except Exception as e:  # one case failing (memory, say) still lets the others report
            traceback.print_exc()
            print(f"{case.name}: FAILED {type(e).__name__}: {str(e).splitlines()[0][:300]}", flush=True)
            continue
        print(f"{r['case']}: {r['params_M']:,.0f}M params, {r['tokens_per_step']:,} tokens/step; setup "
              f"{r['setup_s']:.0f} s; median step {r['median_step_s']:.3f} s (min {r['min_step_s']:.3f}); "
              f"{r['tokens_per_s']:,.0f} tokens/s; {r['tflops']:.1f} TFLOP/s; MFU {r['mfu_989']:.3f} of 989, "
              f"{r['tflops'] * 1e12 / peak:.3f} of the measured matmul; loss {r['loss_first']:.3f} -> "
              f"{r['loss_last']:.3f}", flush=True)
        print(f"mfu_bf16_vs_989TFLOPs {r['case']}={r['mfu_989']:.3f}", flush=True)
        if args.trace:
            print(trace_summary(f"{args.trace}/{case.name}"), flush=True)


def trace_summary(folder: str, top: int = 30) -> str:
    """Device time by op name (and by class: matmul / attention-fusion / other fusion / copy) of the perfetto
    trace(s) under `folder`, from the processes that are not the host."""
    import collections

    import common

    events = common.trace_events(folder)
    procs = {p for p, _, _ in events if p}  # events of a process without a name are not counted
    device = {p for p in procs if "host" not in p.lower()} or procs
    by_name: collections.Counter = collections.Counter()
    for proc, name, dur in events:
        if proc in device:
            by_name[name] += dur
    total = sum(by_name.values()) or 1.0
    classes: collections.Counter = collections.Counter()
    for n, d in by_name.items():
        low = n.lower()
        key = ("matmul" if any(k in low for k in ("gemm", "cutlass", "nvjet", "dot", "matmul", "sm90")) else
               "copy/transpose" if any(k in low for k in ("copy", "transpose")) else "other")
        classes[key] += d
    lines = [f"trace {folder}: {total / 1e3:.1f} ms of device ops over the traced steps"]
    lines += [f"  class {k}: {v / total:.1%}" for k, v in classes.most_common()]
    lines += [f"  {d / total:6.1%} {d / 1e3:9.2f} ms  {n[:120]}" for n, d in by_name.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
