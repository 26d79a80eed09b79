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


def main(argv=None) -> int:
    from workbench.data.cli import add_subparser as add_data
    from workbench.train.cli import add_subparser as add_train

    parser = add_debug_flag(argparse.ArgumentParser(prog="workbench"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_data(sub)
    add_train(sub)
    args = parser.parse_args(argv)
    return run_command(f"workbench {args.cmd}", lambda: args.func(args), getattr(args, "debug", False))


if __name__ == "__main__":
    raise SystemExit(main())
