"""CLI: python -m extract <command> ... (= nerbatch). A table of commands: each is a module of
extract/cli with ``add(subparsers)`` and ``run(args) -> exit code``."""
from __future__ import annotations

import argparse
import sys

from extract.cli import export_onnx, plan, quality, report, review, run, serve, show

COMMANDS = {"run": run, "plan": plan, "review": review, "report": report, "show": show, "quality": quality,
            "export-onnx": export_onnx, "serve": serve}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extract")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS.values():
        command.add(sub)
    args = p.parse_args(argv)
    return COMMANDS[args.cmd].run(args)


if __name__ == "__main__":
    sys.exit(main())
