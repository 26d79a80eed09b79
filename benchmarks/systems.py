"""Systems under test, each a factory run inside a worker process that returns a zero-argument step.

Ours: a jitted JAX training step (AdamW via optax, params and optimizer state donated). Theirs:
transformers Gemma2ForCausalLM / T5GemmaForConditionalGeneration loaded from the checkpoint we wrote
(same weights), eager attention (soft-capping), torch AdamW (fused), optionally `torch.compile`d.
"""

from __future__ import annotations

from collections.abc import Callable

from common import Setup

LR, WD = 1e-4, 0.01


def _batch(setup: Setup, seed: int = 0):
    import numpy as np
    rng = np.random.RandomState(seed)
    # ids >= 3: T5Gemma's default mask treats id 0 as padding
    enc = rng.randint(3, setup.vocab, size=(setup.batch, setup.seq)).astype(np.int32)
    tgt = rng.randint(3, setup.vocab, size=(setup.batch, setup.seq)).astype(np.int32)
    return enc, tgt


# --------------------------------------------------------------------------------------------- ours
def jax_train_step(setup: Setup, model: str) -> Callable[[], None]:
    """Our jitted step on the benchmark batch; `model` is 'decoder' or 'encdec'."""
    import jax
    import jax.numpy as jnp
    import optax

    from workbench import decoder, encdec, masks

    tx = optax.adamw(LR, weight_decay=WD)
    enc_np, tgt_np = _batch(setup)
    if model == "decoder":
        cfg = setup.gemma_config()
        params = decoder.init(cfg, jax.random.key(0))

        def loss_fn(p, enc, tgt):
            logits = decoder.forward(p, cfg, enc)[:, :-1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, enc[:, 1:]).mean()
    else:
        cfg = setup.encdec_config()
        params = encdec.init(cfg, jax.random.key(0))

        def loss_fn(p, enc, tgt):
            logits = encdec.forward(p, cfg, enc, masks.shift_right(tgt))
            return optax.softmax_cross_entropy_with_integer_labels(logits, tgt).mean()

    def step(p, s, enc, tgt):
        loss, g = jax.value_and_grad(loss_fn)(p, enc, tgt)
        upd, s = tx.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    enc, tgt = jnp.asarray(enc_np), jnp.asarray(tgt_np)
    params, (enc, tgt) = place(params, enc, tgt)
    state = [params, tx.init(params)]

    def run() -> None:
        state[0], state[1], loss = step(state[0], state[1], enc, tgt)
        loss.block_until_ready()

    for _ in range(2):
        run()
    return run


def place(params, *batch):
    """Data parallel over host "devices" (one per core) when there are several: params replicated, the batch
    split on a 'data' mesh axis; unchanged on one device."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if jax.device_count() == 1:
        return params, batch
    mesh = Mesh(jax.devices(), ("data",))
    return (jax.device_put(params, NamedSharding(mesh, PartitionSpec())),
            tuple(jax.device_put(x, NamedSharding(mesh, PartitionSpec("data"))) for x in batch))


def save_checkpoint(setup: Setup, model: str, path: str) -> None:
    """Write our seed-0 initial parameters as an HF checkpoint (the torch side loads the same weights)."""
    import jax

    from workbench import decoder, encdec
    from workbench.interop import save_hf_gemma2, save_hf_t5gemma
    if model == "decoder":
        cfg = setup.gemma_config()
        save_hf_gemma2(cfg, decoder.init(cfg, jax.random.key(0)), path)
    else:
        cfg = setup.encdec_config()
        save_hf_t5gemma(cfg, encdec.init(cfg, jax.random.key(0)), path)


# -------------------------------------------------------------------------------------------- torch
def torch_model(model: str, path: str, threads: int):
    import torch
    import transformers
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    cls = transformers.Gemma2ForCausalLM if model == "decoder" else transformers.T5GemmaForConditionalGeneration
    return cls.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)


def torch_train_step(setup: Setup, model: str, path: str, threads: int, compile_: bool) -> Callable[[], None]:
    import torch
    net = torch_model(model, path, threads).train()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD, fused=True)
    fwd = torch.compile(net) if compile_ else net
    enc_np, tgt_np = _batch(setup)
    enc, tgt = torch.tensor(enc_np, dtype=torch.long), torch.tensor(tgt_np, dtype=torch.long)
    if model == "decoder":
        kwargs = {"input_ids": enc, "labels": enc}
    else:
        dec_in = torch.cat([torch.full_like(tgt[:, :1], 2), tgt[:, :-1]], dim=1)
        kwargs = {"input_ids": enc, "decoder_input_ids": dec_in, "labels": tgt}

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        loss = fwd(**kwargs).loss
        loss.backward()
        opt.step()

    for _ in range(2):
        run()
    return run


def jax_matmul_peak(n: int = 2048, reps: int = 10) -> tuple[float, float]:
    """(FLOP/s, FLOP per CPU-second) of an n x n fp32 JAX matmul: `workbench.flops.matmul_peak`."""
    from workbench.flops import matmul_peak

    return matmul_peak(n, reps)


# ------------------------------------------------------------------------------------------- generation
def _prompt(setup: Setup, prompt_len: int):
    import numpy as np
    return np.random.RandomState(1).randint(3, setup.vocab, size=(1, prompt_len)).astype(np.int32)


def jax_generate(setup: Setup, model: str, prompt_len: int, new_tokens: int):
    """Our jitted KV-cached greedy generation at batch 1; EOS set to an impossible id (runs never end early)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from workbench import decoder, encdec, generate
    cfg = setup.gemma_config() if model == "decoder" else setup.encdec_config()
    params = (decoder if model == "decoder" else encdec).init(cfg, jax.random.key(0))
    prompt = jnp.asarray(_prompt(setup, prompt_len))
    out = []

    def run() -> None:
        out[:] = [generate.generate(params, cfg, prompt, new_tokens, eos_id=-1).block_until_ready()]

    for _ in range(2):
        run()
    return run, np.asarray(out[0])[0].tolist()


def torch_generate(setup: Setup, model: str, path: str, threads: int, prompt_len: int, new_tokens: int):
    """transformers `generate`: greedy, use_cache, exactly `new_tokens` tokens (min = max new tokens)."""
    import torch
    net = torch_model(model, path, threads).eval()
    prompt = torch.tensor(_prompt(setup, prompt_len), dtype=torch.long)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
              attention_mask=torch.ones_like(prompt))
    out = []

    @torch.inference_mode()
    def run() -> None:
        out[:] = [net.generate(prompt, **kw)]

    for _ in range(2):
        run()
    toks = out[0][0].tolist()
    # decoder-only returns prompt + new tokens; encoder-decoder returns BOS + new tokens
    return run, toks[prompt_len:] if model == "decoder" else toks[1:]
