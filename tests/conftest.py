"""Shared fixtures. Tests that need the labelled tweets ask for ``data_dir``; it skips with a reason
when ``SENTIMENT_DATA_DIR`` is not set (the data is never committed into this repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "SENTIMENT_DATA_DIR"

# One SentimentScored per request in tests (and in the processes they start), so each event can be checked
# against its request; the summing window that deployments use has tests of its own (test_telemetry.py).
os.environ.setdefault("SENTIMENT_SCORED_WINDOW_SECONDS", "0")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set: give the labelled tweet folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{DATA_ENV}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
