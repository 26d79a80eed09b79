"""MFU of a bf16 encoder-decoder training step on one accelerator (`train_throughput.py --device gpu`).

Default: the L-L preset (T5Gemma L: 24 layers, d 1024 per stack) with a 32k vocabulary, batch 16 x
(1024 encoder + 1024 decoder tokens), bf16 activations, fp32 parameters and AdamW state, MFU against
the H100/H200 dense bf16 peak (989 TFLOP/s) with FLOPs from `workbench.flops`. Not run on CPU machines
except in --quick form (a tiny config, to check that the path works).
"""

from __future__ import annotations

import time

import common


def main(setup: common.Setup, steps: int = 10, preset: str = "L-L", vocab: int = 32_768, batch: int = 16,
         enc_len: int = 1024, dec_len: int = 1024) -> None:
    import jax
    import optax

    from workbench import encdec, flops, masks
    from workbench.config import encdec_preset
    if setup == common.QUICK:
        cfg = setup.encdec_config()
        batch, enc_len, dec_len = setup.batch, setup.seq, setup.seq
    else:
        cfg = encdec_preset(preset, vocab_size=vocab)
    cfg = cfg.replace(encoder=cfg.encoder.replace(dtype="bfloat16"), decoder=cfg.decoder.replace(dtype="bfloat16"))
    tx = optax.adamw(1e-4, weight_decay=0.01)
    params = jax.jit(encdec.init, static_argnums=0)(cfg, jax.random.key(0))
    opt = tx.init(params)
    rng = jax.random.key(1)
    enc = jax.random.randint(rng, (batch, enc_len), 3, cfg.encoder.vocab_size)
    tgt = jax.random.randint(jax.random.fold_in(rng, 1), (batch, dec_len), 3, cfg.decoder.vocab_size)

    def loss_fn(p):
        logits = encdec.forward(p, cfg, enc, masks.shift_right(tgt))
        return optax.softmax_cross_entropy_with_integer_labels(logits, tgt).mean()

    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, s = tx.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    for _ in range(2):
        params, opt, loss = step(params, opt)
    loss.block_until_ready()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        params, opt, loss = step(params, opt)
        loss.block_until_ready()
        times.append(time.perf_counter() - t)
    wall = common.median(times)
    fl = batch * flops.encdec_flops_per_example(cfg, enc_len, dec_len, train=True)
    tokens = batch * (enc_len + dec_len)
    dev = jax.devices()[0]
    mfu = flops.mfu(tokens / wall, fl / tokens, flops.H100_BF16_PEAK)
    print(f"device {dev.device_kind} ({dev.platform}); {preset if setup != common.QUICK else 'quick'} "
          f"batch {batch} x ({enc_len} + {dec_len}); median step {wall:.3f} s; {tokens / wall:,.0f} tokens/s; "
          f"{fl / wall / 1e12:.1f} TFLOP/s; loss {float(loss):.3f}")
    print(f"mfu_bf16_vs_989TFLOPs {mfu:.3f}")
