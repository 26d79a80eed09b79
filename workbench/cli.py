"""``workbench`` command line (minimal; other command groups register their own sub-parsers)."""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    from workbench.data.cli import add_subparser as add_data
    from workbench.train.cli import add_subparser as add_train

    parser = argparse.ArgumentParser(prog="workbench")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_data(sub)
    add_train(sub)
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
