"""``python -m training <subcommand>``."""

from training.cli import app

app()
