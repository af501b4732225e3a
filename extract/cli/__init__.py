"""Subcommands of `python -m extract`: each module has `add(sub)` (its parser) and `run(args)`
(call the library, map errors to exit codes). No logic of its own lives here."""
