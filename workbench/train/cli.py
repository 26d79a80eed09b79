"""`workbench train ...` / `python -m workbench.train ...`: pretraining and adaptation runs without a notebook.

Objectives: `causal` (decoder-only LM), `prefixlm` and `ul2` (encoder-decoder). `--init-from` names a decoder
checkpoint (a `workbench.zoo` name or an HF Gemma 2 directory): with `causal` training continues from it, with
`prefixlm`/`ul2` it is adapted into a balanced encoder-decoder (add `--encoder-from` for an unbalanced pair,
whose cross-attention trains alone for `--cross-attn-warmup` steps). `--kd-weight` distils PrefixLM from the
`--init-from` decoder. `--save-as NAME` stores the result in the model store.

Data: `--data tokens.npy` (an integer array [N, L] of token ids, checked: dtype, shape, ids in the model's
vocabulary) or, without it, the offline corpus of `workbench.data` (`workbench data prepare` first): corpus
train split -> tokenizer -> packed rows of `--seq-len`. The vocabulary is `--vocab-size`, else that of the
`--init-from` model, else the tokenizer's (corpus) or the preset's (`--data`); it is never grown to fit the data.
Re-running the same command with the same `--out-dir` resumes from the latest checkpoint; other settings (or
another model or data) are refused in one line unless `--allow-config-change`. A user error prints one line
(`--debug` shows the traceback).

Multi-host (TPU pods / multi-node GPU): start the same command on every host with `--distributed`; it calls
`jax.distributed.initialize()` (coordinator, process count and id from the environment: SLURM, TPU metadata,
or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID) before anything touches devices. Every
process then builds the same mesh over all global devices; `get_batch` yields this process's rows
(`--batch` is global; each process takes its 1/process_count slice), checkpoints are written collectively
by orbax and metrics by process 0.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from workbench.cli import add_debug_flag, run_command


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--out-dir", required=True, help="run directory (checkpoints, metrics); resumed if present")
    p.add_argument("--data", default=None, help=".npy int token array [N, L]; default: workbench.data corpus")
    p.add_argument("--seq-len", type=int, default=256, help="row length when packing the corpus")
    p.add_argument("--objective", default="causal", choices=["causal", "prefixlm", "ul2"])
    p.add_argument("--init-from", default=None, help="decoder checkpoint to continue from / adapt (zoo name or dir)")
    p.add_argument("--encoder-from", default=None, help="second (larger) decoder for an unbalanced encoder")
    p.add_argument("--cross-attn-warmup", type=int, default=0, help="steps training only cross-attention")
    p.add_argument("--kd-weight", type=float, default=0.0, help="PrefixLM distillation weight (teacher: init-from)")
    p.add_argument("--save-as", default=None, help="store the final model in workbench.zoo under this name")
    p.add_argument("--preset", default="tiny", help="decoder preset (workbench.config.DECODER_PRESETS)")
    p.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocabulary size")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8, help="global batch size (rows)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant", "linear"])
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adafactor"])
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--ema-decay", type=float, default=None)
    p.add_argument("--keep-last-k", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mesh", default=None, help="data,fsdp,tensor (default: all devices on data)")
    p.add_argument("--peak-flops", type=float, default=None, help="summed device peak FLOP/s, for MFU")
    p.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() first")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume the run in --out-dir even though its saved settings differ from these")
    add_debug_flag(p)
    p.set_defaults(func=run)
    return p


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `train` on the `workbench` command."""
    return add_arguments(subparsers.add_parser("train", help="pretraining / adaptation runs (resumable)",
                                               description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter))


def load_token_file(path: str | os.PathLike) -> np.ndarray:
    """A .npy array of token ids [rows, length], checked for dtype, rank and emptiness (ValueError naming it)."""
    where = f"--data {os.fspath(path)}"
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{where}: not a readable .npy array ({e}); write token ids with numpy.save") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{where}: an .npz archive; pass one .npy array of token ids [rows, length]")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{where}: dtype {arr.dtype}, but token ids must be integers (save them with "
                         f".astype(np.int32)); a float array would be truncated")
    if arr.ndim != 2:
        raise ValueError(f"{where}: shape {arr.shape}, expected 2 dimensions [rows, length]")
    if arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(f"{where}: shape {arr.shape} holds no training rows (need rows of at least 2 tokens)")
    return arr


def check_token_ids(tokens: np.ndarray, vocab_size: int, where: str, vocab_from: str) -> np.ndarray:
    """`tokens` as int32 once every id is in [0, vocab_size); else ValueError naming the first bad id."""
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        r, c = (int(x) for x in np.argwhere(tokens == bad)[0])
        raise ValueError(f"{where}: token id {bad} at [{r}, {c}] is outside the vocabulary [0, {vocab_size}) of "
                         f"{vocab_from}; pass --vocab-size above the largest id ({hi}) or fix the data")
    return tokens.astype(np.int32)


def _tokens(args) -> tuple[np.ndarray, int | None]:
    """(token rows, the tokenizer's vocabulary size or None for --data)."""
    if args.data:
        return load_token_file(args.data), None
    from workbench.data import lm_arrays, load_corpus, load_tokenizer

    tok = load_tokenizer()
    return lm_arrays(load_corpus()["train"]["text"], tok, args.seq_len), tok.vocab_size


def _model_and_loss(args, tokens_NxL: np.ndarray, tokenizer_vocab: int | None = None):
    """(config, initial params, loss_fn, get_batch over the whole global batch, FLOPs per token, token rows).

    The token ids are checked against the model's vocabulary (see the module doc for where it comes from).
    """
    import jax

    from workbench import adapt, config, flops, objectives, recipes, zoo

    key = jax.random.key(args.seed)
    where = f"--data {args.data}" if args.data else "the corpus tokens"
    if args.init_from:
        dec_cfg, dec_params = zoo.load(args.init_from)
        if args.vocab_size is not None and args.vocab_size != dec_cfg.vocab_size:
            raise ValueError(f"--vocab-size {args.vocab_size} conflicts with --init-from {args.init_from}, whose "
                             f"vocabulary has {dec_cfg.vocab_size} ids; drop --vocab-size")
        vocab_from = f"--init-from {args.init_from}"
    else:
        if args.vocab_size is not None and args.vocab_size <= 0:
            raise ValueError(f"--vocab-size must be positive, got {args.vocab_size}")
        vocab = args.vocab_size or tokenizer_vocab
        dec_cfg = config.decoder_preset(args.preset, **({"vocab_size": vocab} if vocab else {}))
        vocab_from = ("--vocab-size" if args.vocab_size else "the tokenizer" if tokenizer_vocab
                      else f"preset {args.preset!r}")
        dec_params = None
    tokens_NxL = check_token_ids(tokens_NxL, dec_cfg.vocab_size, where, vocab_from)  # before any initialisation
    if dec_params is None:
        dec_params = jax.jit(adapt.from_scratch, static_argnums=0)(dec_cfg, key)
    L = tokens_NxL.shape[1]
    if args.objective == "causal":
        return (dec_cfg, dec_params, objectives.causal_lm_loss(dec_cfg),
                recipes.row_batches(tokens_NxL, args.batch, args.seed), flops.train_flops_per_token(dec_cfg, L - 1),
                tokens_NxL)
    if args.encoder_from:
        enc_cfg, enc_params = zoo.load(args.encoder_from)
        ed_cfg = config.EncDecConfig(enc_cfg, dec_cfg)
        params = adapt.decoder_to_encdec(dec_params, ed_cfg, enc_params=enc_params, rng=key)
    else:
        ed_cfg = config.EncDecConfig(dec_cfg, dec_cfg)
        params = adapt.decoder_to_encdec(dec_params, ed_cfg) if args.init_from else adapt.from_scratch(ed_cfg, key)
    if args.objective == "ul2":
        from workbench.data import load_tokenizer

        tok = load_tokenizer()
        get_batch = recipes.ul2_batches(tokens_NxL, args.batch, tok.sentinel_ids, tok.mode_ids, seed=args.seed)
        kd = 0.0
    else:
        get_batch, kd = recipes.prefix_lm_batches(tokens_NxL, args.batch, args.seed), args.kd_weight
        if kd > 0:
            if not args.init_from:
                raise ValueError("--kd-weight needs --init-from (the decoder-only teacher)")
            get_batch = recipes.with_teacher(get_batch, dec_params, dec_cfg)
    per_token = flops.encdec_flops_per_example(ed_cfg, L // 2, L - L // 2, train=True) / L
    return ed_cfg, params, objectives.encdec_seq2seq_loss(ed_cfg, kd_weight=kd), get_batch, per_token, tokens_NxL


def _run_info(args, model_cfg, tokens_NxL: np.ndarray) -> dict:
    """What identifies the run besides TrainConfig (compared when --out-dir is resumed)."""
    data = os.path.abspath(args.data) if args.data else f"corpus (seq_len {args.seq_len})"
    vocab = getattr(model_cfg, "decoder", model_cfg).vocab_size
    return {"objective": args.objective, "preset": None if args.init_from else args.preset, "vocab_size": vocab,
            "init_from": args.init_from, "encoder_from": args.encoder_from, "kd_weight": args.kd_weight,
            "data": data, "data_shape": list(tokens_NxL.shape)}


def run(args) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from workbench import adapt, zoo
    from workbench.train import TrainConfig, train

    tokens_NxL, tokenizer_vocab = _tokens(args)
    model_cfg, params, loss_fn, global_batch, flops, tokens_NxL = _model_and_loss(args, tokens_NxL, tokenizer_vocab)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, learning_rate=args.lr, warmup_steps=args.warmup,
                      schedule=args.schedule, optimizer=args.optimizer, weight_decay=args.weight_decay,
                      clip_norm=args.clip_norm, grad_accum=args.grad_accum, compute_dtype=args.compute_dtype,
                      ema_decay=args.ema_decay, keep_last_k=args.keep_last_k,
                      checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed,
                      mesh_shape=tuple(int(x) for x in args.mesh.split(",")) if args.mesh else None,
                      freeze_steps=args.cross_attn_warmup if args.encoder_from else 0,
                      trainable=adapt.cross_attention_only if args.encoder_from else None, out_dir=args.out_dir)
    n_proc, pid = jax.process_count(), jax.process_index()
    per = args.batch // n_proc

    def get_batch(step: int) -> dict:
        b = global_batch(step)
        return {k: v[pid * per:(pid + 1) * per] for k, v in b.items()}

    res = train(loss_fn, params, get_batch, cfg, out_dir=args.out_dir, flops_per_token=flops,
                peak_flops=args.peak_flops, progress=not args.no_progress,
                run_info=_run_info(args, model_cfg, tokens_NxL), allow_config_change=args.allow_config_change)
    if args.save_as and pid == 0:
        zoo.save(args.save_as, model_cfg, res.params)
    if pid == 0:
        last = res.history[-1] if res.history else {}
        print(json.dumps({"step": res.step, "loss": last.get("loss"), "out_dir": args.out_dir,
                          "saved_as": args.save_as}))
    return 0


def main(argv=None) -> int:
    p = add_arguments(argparse.ArgumentParser(prog="python -m workbench.train", description=__doc__,
                                              formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args(argv)
    return run_command("workbench train", lambda: args.func(args), getattr(args, "debug", False))
