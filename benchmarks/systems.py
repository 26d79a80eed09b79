"""Systems under test, each a factory run inside a worker process that returns a zero-argument step.

Ours: a jitted JAX training step (AdamW via optax, params and optimizer state donated). Theirs:
transformers Gemma2ForCausalLM / T5GemmaForConditionalGeneration loaded from the checkpoint we wrote
(same weights), eager attention (soft-capping), torch AdamW (fused), optionally `torch.compile`d.
"""

from __future__ import annotations

from collections.abc import Callable

import common
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
def trainer_config(bf16: bool = False):
    """The trainer's settings for the comparison: AdamW as torch's (betas 0.9 / 0.999, eps 1e-8, weight decay
    0.01, embeddings decayed too), constant LR, no clipping; torch decays the norm scales as well (ours: matrices
    only), a few elementwise ops of difference. `bf16`: the trainer's mixed precision (fp32 params and AdamW
    state, cast to bf16 inside the loss)."""
    from workbench.train import TrainConfig

    return TrainConfig(learning_rate=LR, weight_decay=WD, b2=0.999, eps=1e-8, clip_norm=None, schedule="constant",
                       warmup_steps=0, decay_embeddings=True, compute_dtype="bfloat16" if bf16 else "float32")


def trainer_step(loss_fn, params, batch: dict, bf16: bool = False) -> Callable[[], None]:
    """One update of `workbench.train.Stepper`, the object `train` runs (same jit, shardings over all JAX
    devices, donation), with the metrics fetched to the host every step as `train` does."""
    from workbench.train import Stepper

    stepper = Stepper(loss_fn, trainer_config(bf16), params)
    state = [stepper.init(params)]
    placed = stepper.batch(batch)

    def run() -> None:
        state[0], mets = stepper(state[0], placed)
        float(mets["loss"])

    for _ in range(2):
        run()
    return run


def jax_train_step(setup: Setup, model: str, bf16: bool = False) -> Callable[[], None]:
    """Our training step on the benchmark batch, through the trainer (`trainer_step`) with the notebooks' losses
    (`objectives.causal_lm_loss`, `objectives.encdec_seq2seq_loss`); `model` is 'decoder' or 'encdec';
    `bf16`: bf16 activations and the trainer's mixed precision (the same fp32 initial params)."""
    import jax

    from workbench import decoder, encdec, objectives

    enc, tgt = _batch(setup)
    if model == "decoder":
        cfg = setup.gemma_config()
        loss = objectives.causal_lm_loss(common.bf16_config(cfg) if bf16 else cfg)
        return trainer_step(loss, decoder.init(cfg, jax.random.key(0)), {"tokens": enc}, bf16)
    cfg = setup.encdec_config()
    loss = objectives.encdec_seq2seq_loss(common.bf16_config(cfg) if bf16 else cfg)
    return trainer_step(loss, encdec.init(cfg, jax.random.key(0)), {"inputs": enc, "targets": tgt}, bf16)


# ---------------------------------------------------------------------------------- the real Gemma 3 270M
REAL_TASK = "sentiment_binary"  # the vocabulary is pruned to this task's texts, as in 08_real_encoder


def real_model(quick: bool):
    """(config, params): Gemma 3 270M (`zoo`, from the registry package) with its vocabulary pruned to the
    texts of `REAL_TASK` (512 train + 800 test examples); `quick`: the tiny random Gemma 3 preset instead."""
    from workbench import encoder_study, real_gemma

    config, params, tok = real_gemma.load_base("tiny3" if quick else "gemma3-270m")
    n = (32, 32) if quick else (512, 800)
    texts = encoder_study.task_texts(REAL_TASK, n_train=n[0], n_test=n[1], seed=0)
    config, params, _ = real_gemma.prune_to_texts(config, params, tok, texts)
    return config, params


def real_batch(vocab: int, batch: int, seq: int):
    import numpy as np
    return np.random.RandomState(0).randint(3, vocab, size=(batch, seq)).astype(np.int32)


def save_real_checkpoint(quick: bool, path: str):
    """Write the pruned model as an HF Gemma 3 checkpoint (the torch side loads the same weights); its config."""
    from workbench.interop import save_hf_gemma3

    config, params = real_model(quick)
    save_hf_gemma3(config, params, path)
    return config


def jax_real_train_step(path: str, batch: int, seq: int, bf16: bool = False) -> Callable[[], None]:
    """Our causal-LM training step of the pruned Gemma 3 checkpoint at `path` (loaded back with our reader)."""
    from workbench import objectives
    from workbench.interop import load_hf_gemma3

    config, params = load_hf_gemma3(path)
    return trainer_step(objectives.causal_lm_loss(common.bf16_config(config) if bf16 else config), params,
                        {"tokens": real_batch(config.vocab_size, batch, seq)}, bf16)


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
    """transformers' model of our checkpoint: Gemma 2 / T5Gemma with eager attention (their attention soft-cap
    needs it); the real Gemma 3 (no soft-cap) with transformers' default attention (SDPA)."""
    import torch
    import transformers
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    if model == "real":
        return transformers.Gemma3ForCausalLM.from_pretrained(path, dtype=torch.float32)
    cls = transformers.Gemma2ForCausalLM if model == "decoder" else transformers.T5GemmaForConditionalGeneration
    return cls.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)


def torch_train_step(setup: Setup | tuple[int, int], model: str, path: str, threads: int, compile_: bool,
                     bf16: bool = False) -> Callable[[], None]:
    """transformers' training step (torch AdamW, fused); `model` 'real' takes `setup` = (batch, seq); `bf16`:
    forward and loss under `torch.autocast('cpu', torch.bfloat16)` (fp32 params and AdamW state)."""
    import contextlib

    import torch
    net = torch_model(model, path, threads).train()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD, fused=True)
    fwd = torch.compile(net) if compile_ else net
    if model == "real":
        enc_np = tgt_np = real_batch(net.config.vocab_size, *setup)
    else:
        enc_np, tgt_np = _batch(setup)
    enc, tgt = torch.tensor(enc_np, dtype=torch.long), torch.tensor(tgt_np, dtype=torch.long)
    if model in ("decoder", "real"):
        kwargs = {"input_ids": enc, "labels": enc}
    else:
        dec_in = torch.cat([torch.full_like(tgt[:, :1], 2), tgt[:, :-1]], dim=1)
        kwargs = {"input_ids": enc, "decoder_input_ids": dec_in, "labels": tgt}

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
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
