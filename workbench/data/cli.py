"""``workbench data ...`` sub-commands (``python -m workbench.data.cli prepare`` works too)."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.cli import add_debug_flag, run_command


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` with its ``prepare``, ``card`` and ``baseline`` sub-commands."""
    p = subparsers.add_parser("data", help="offline corpus, tokenizer and tasks")
    sub = p.add_subparsers(dest="data_cmd", required=True)
    pp = sub.add_parser("prepare", help="fetch sources, build corpus, tokenizer and tasks")
    pp.add_argument("--cache", default=None, help="cache dir (default $WORKBENCH_CACHE or <repo>/.cache/workbench)")
    pp.add_argument("--force", action="store_true", help="refetch and rebuild everything")
    pp.add_argument("--sources", default=None,
                    help="comma-separated sources to fetch and refresh; the corpus keeps every fetched source, "
                         "only their tasks (and the mixture) are rebuilt; exits 1 if one of them fails")
    pp.add_argument("--restrict-corpus", action="store_true",
                    help="with --sources: build the corpus (and retrain the tokenizer) from those sources only")
    pp.add_argument("--vocab-size", type=int, default=8192)
    pp.add_argument("--baselines", action="store_true", help="also compute TF-IDF baselines per task")
    pp.set_defaults(func=_prepare)
    pc = sub.add_parser("card", help="print a task's data card")
    pc.add_argument("task")
    pc.add_argument("--cache", default=None)
    pc.set_defaults(func=lambda a: print(__import__("workbench.data", fromlist=["x"]).task_card(a.task, a.cache)))
    pb = sub.add_parser("baseline", help="TF-IDF baseline of one task")
    pb.add_argument("task")
    pb.add_argument("--cache", default=None)
    pb.set_defaults(func=_baseline)
    for leaf in (p, pp, pc, pb):
        add_debug_flag(leaf)
    return p


def _prepare(args) -> int:
    from workbench.data.prepare import prepare

    sources = [x.strip() for x in args.sources.split(",") if x.strip()] if args.sources is not None else None
    if args.sources is not None and not sources:
        raise ValueError("--sources is empty: name at least one source (or leave it out to prepare everything)")
    if args.restrict_corpus and not sources:
        raise ValueError("--restrict-corpus needs --sources (the sources the corpus is built from)")
    s = prepare(
        sources=sources,
        cache=args.cache,
        force=args.force,
        vocab_size=args.vocab_size,
        baselines=args.baselines,
        restrict_corpus=args.restrict_corpus,
    )
    print(json.dumps({k: s[k] for k in ("fetched", "failed", "timings")}, indent=1))
    if sources and s["failed"]:
        print(f"workbench data prepare: error: requested source(s) {', '.join(s['failed'])} failed (reasons above); "
              f"fix their client or network access and run the command again", file=sys.stderr)
        return 1
    return 0


def _baseline(args) -> int:
    from workbench.data.baselines import tfidf_baseline

    print(json.dumps(tfidf_baseline(args.task, args.cache), indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="workbench")
    add_subparser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["data", *(argv if argv is not None else sys.argv[1:])])
    return run_command("workbench data", lambda: args.func(args), getattr(args, "debug", False))


if __name__ == "__main__":
    raise SystemExit(main())
