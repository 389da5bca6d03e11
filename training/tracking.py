"""MLflow tracking with a local store by default: nothing leaves the machine unless a URI says so.

``mlflow-skinny`` has no database backend, so the default store is MLflow's file store (a folder of
runs that ``mlflow ui --backend-store-uri`` reads). A ``--mlflow-uri`` or ``MLFLOW_TRACKING_URI`` wins.
"""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT = "air-paradis-sentiment"


def tracking_uri(uri: str | None, default_dir: Path) -> str:
    """The URI given, else ``MLFLOW_TRACKING_URI``, else a file store under ``default_dir``."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or Path(default_dir).resolve().as_uri()
    if chosen.startswith("file:") or "://" not in chosen:
        # The file store is in maintenance mode in MLflow 3 but is what mlflow-skinny can write.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return chosen


def start(uri: str, run_name: str):
    """Point MLflow at ``uri``, select the project's experiment and open a run (a context manager)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow.start_run(run_name=run_name)


def flat_params(params: dict, prefix: str = "") -> dict[str, str]:
    """MLflow params are strings of at most 6000 characters: flatten nested dicts with dotted keys."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves only (confusion matrices and counts stay in the JSON artifacts)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
