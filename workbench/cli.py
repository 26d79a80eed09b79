"""``workbench`` command line (minimal; other command groups register their own sub-parsers).

Every entry point (``workbench``, ``python -m workbench.train``, ``python -m workbench.data.cli``,
``python -m workbench.reproduce``) runs its command through :func:`run_command`: a user error (bad input file,
unknown name, incompatible run directory, failed source, diverged training ...) ends as one line on stderr
and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# What a user can cause and fix: bad values and files (ValueError covers DataError, CheckpointError and JSON
# errors), unknown names (LookupError), missing or unreadable paths (OSError), diverged training
# (ArithmeticError) and failed external steps (RuntimeError: fetches, notebooks, XLA out of memory).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, LookupError, OSError, ArithmeticError, RuntimeError)


def one_line(err: BaseException) -> str:
    """The error's message on one line (KeyError without its quotes; continuation lines joined by '; ')."""
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    parts = [p.strip() for p in msg.splitlines() if p.strip()]
    text = "; ".join(parts) or type(err).__name__
    return text if isinstance(err, ValueError | LookupError | RuntimeError) else f"{type(err).__name__}: {text}"


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--debug` (accepted before or after a sub-command; read it with `getattr(args, "debug", False)`)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    return parser


def run_command(prog: str, command: Callable[[], int | None], debug: bool = False) -> int:
    """Run `command`; a user error prints `<prog>: error: <message>` and returns 1 (re-raised with `debug`)."""
    try:
        return command() or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"{prog}: error: {one_line(e)} (--debug shows the traceback)", file=sys.stderr)
        return 1


FINETUNE_DOC = """Finetune a stored model on your own task, evaluate it on held-out rows, print one summary line.

  workbench finetune --task-kind seq2seq --model demo/encdec --data pairs.jsonl --input-col question \\
      --target-col answer --epochs 2 --out runs/qa

Task kinds: seq2seq (--input-col, --target-col), classification and regression (--text-col [--text-pair-col]
--label-col), ranking (--query-col, --candidates-col: a list per row, --label-col: index of the positive).
--data: a JSONL / CSV / Parquet file, a directory of train/validation files, a hub name or a prepared task
(sentiment_binary, retrieval ...). Held-out rows: the validation (else test) split, else a seeded --eval-fraction
of the training file. --model: a model-store name or checkpoint directory (decoder-only or encoder-decoder);
classification/regression/ranking train an encoder-only model built from it. Re-running the same command
resumes from the run's latest checkpoint (--out). See `workbench.finetune`.
"""


def add_finetune_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `finetune` on the `workbench` command (flags mirror `workbench.finetune.finetune`)."""
    p = subparsers.add_parser("finetune", help="finetune a stored model on your own task (resumable)",
                              description=FINETUNE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task-kind", required=True, help="seq2seq | classification | regression | ranking")
    p.add_argument("--model", required=True, help="model-store name or checkpoint directory")
    p.add_argument("--data", required=True, help="data file / directory, hub name or prepared task name")
    cols = p.add_argument_group("columns")
    for flag, default in (("input", "inputs"), ("target", "targets"), ("text", "text"), ("text-pair", None),
                          ("label", "label"), ("query", "query"), ("candidates", "candidates")):
        cols.add_argument(f"--{flag}-col", default=default, help=f"default: {default}")
    d = p.add_argument_group("held-out rows and subsets")
    d.add_argument("--eval-split", default=None, help="held-out split (default: validation, else test)")
    d.add_argument("--eval-fraction", type=float, default=0.1, help="held out of train when there is no such split")
    d.add_argument("--max-train", type=int, default=None, help="seeded subset of the training rows")
    d.add_argument("--max-eval", type=int, default=None, help="seeded subset of the held-out rows")
    d.add_argument("--data-seed", type=int, default=None, help="seed of the held-out split and subsets (--seed)")
    t = p.add_argument_group("training")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=None, help="passes over the training rows (default 1)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    t.add_argument("--batch", type=int, default=8, help="rows (ranking: queries) per step")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5%% of the steps)")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-len", type=int, default=128, help="tokens per input (classification/ranking row)")
    t.add_argument("--max-target-len", type=int, default=64, help="seq2seq target tokens")
    t.add_argument("--max-new-tokens", type=int, default=None, help="generation length (default --max-target-len)")
    t.add_argument("--num-labels", type=int, default=None, help="classes (default: the task's, else max label + 1)")
    t.add_argument("--pooling", default="mean", choices=["mean", "first", "last", "attention"])
    t.add_argument("--pooling-heads", type=int, default=4, help="heads of --pooling attention")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout on the pooled vector (encoder-only)")
    t.add_argument("--encoder-attention", default="bidirectional", choices=["bidirectional", "causal"],
                   help="attention of the encoder-only stack")
    t.add_argument("--decoder-attention", default="causal", choices=["causal", "prefix"],
                   help="decoder-only seq2seq: attention over the input (generation prefill is causal)")
    t.add_argument("--checkpoint-every", type=int, default=None, help="default: steps // 10, within [10, 1000]")
    t.add_argument("--tokenizer", default=None, help="SentencePiece model (default: the prepared tokenizer)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="run directory, resumed if present (default: <cache>/finetune/...)")
    o.add_argument("--save-as", default=None, help="model-store name of the result (default: finetuned/<run>)")
    o.add_argument("--no-save", action="store_true", help="do not save a generative result to the model store")
    o.add_argument("--no-progress", action="store_true")
    o.add_argument("--allow-config-change", action="store_true",
                   help="resume the run in --out even though its saved settings differ from these")
    add_debug_flag(p)
    p.set_defaults(func=_finetune)
    return p


def _finetune(args) -> int:
    from workbench.finetune import finetune

    res = finetune(
        args.task_kind, args.model, args.data, input_col=args.input_col, target_col=args.target_col,
        text_col=args.text_col, text_pair_col=args.text_pair_col, label_col=args.label_col,
        query_col=args.query_col, candidates_col=args.candidates_col, eval_split=args.eval_split,
        eval_fraction=args.eval_fraction, max_train=args.max_train, max_eval=args.max_eval,
        data_seed=args.data_seed, out_dir=args.out,
        save_as=args.save_as, save=not args.no_save, steps=args.steps, epochs=args.epochs, batch=args.batch,
        lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay, seed=args.seed, max_len=args.max_len,
        max_target_len=args.max_target_len, max_new_tokens=args.max_new_tokens, num_labels=args.num_labels,
        pooling=args.pooling, pooling_heads=args.pooling_heads, dropout=args.dropout,
        encoder_attention=args.encoder_attention, decoder_attention=args.decoder_attention,
        checkpoint_every=args.checkpoint_every, tokenizer=args.tokenizer, progress=not args.no_progress,
        allow_config_change=args.allow_config_change)
    print(res.summary)
    return 0


def main(argv=None) -> int:
    from workbench.data.cli import add_subparser as add_data
    from workbench.train.cli import add_subparser as add_train

    parser = add_debug_flag(argparse.ArgumentParser(prog="workbench"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_data(sub)
    add_train(sub)
    add_finetune_subparser(sub)
    args = parser.parse_args(argv)
    return run_command(f"workbench {args.cmd}", lambda: args.func(args), getattr(args, "debug", False))


if __name__ == "__main__":
    raise SystemExit(main())
