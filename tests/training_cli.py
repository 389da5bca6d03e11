"""The training CLI called in-process, for tests of its commands, and the small baseline model several of
them train first."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from training.cli import app


def cli(*args: object) -> tuple[int, str]:
    """``python -m training ARGS`` in this process: (exit status, everything it printed)."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.output


def train_baseline(train_csv: Path, out: Path, export: Path) -> Path:
    """``train`` with the baseline candidate alone on ``train_csv``, exported to ``export`` (fails the test
    when the command does)."""
    status, output = cli(
        "train", "--data", train_csv, "--candidates", "baseline", "--out", out, "--export", export
    )
    assert status == 0, output
    return export
