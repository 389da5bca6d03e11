"""The ``python -m training`` command line: one subcommand per pipeline step.

Each step lives in its own module (``training/<name>.py``) and exposes a Typer-annotated ``command``
function; this file only wires them together, so ``--help`` works on every subcommand.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="Train, evaluate and export the Air Paradis tweet-sentiment model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (subcommand, module): each module defines ``command``.
SUBCOMMANDS = (
    ("eda", "training.eda"),
    ("train", "training.train"),
    ("evaluate", "training.evaluate"),
    ("export", "training.export"),
    ("synth", "training.synth"),
)

for _name, _module in SUBCOMMANDS:
    app.command(_name)(importlib.import_module(_module).command)
