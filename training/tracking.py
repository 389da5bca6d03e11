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


def log_candidate(result) -> None:
    """One nested MLflow run per fitted candidate, one nested run below it per search setting.

    ``result`` carries ``candidate``, ``model``, ``metrics``, ``row`` and ``search_rows`` (the trainer's
    ``CandidateResult``)."""
    import mlflow

    from training.metrics import headline
    from training.reporting.tables import jsonable

    params = jsonable(result.model.get_params(deep=False)) if hasattr(result.model, "get_params") else {}
    with mlflow.start_run(run_name=result.candidate.name, nested=True):
        mlflow.log_params(flat_params({"candidate": result.candidate.name, **params}))
        mlflow.log_param("search", result.row["search"])
        mlflow.log_metrics(
            flat_metrics(
                {
                    **headline(result.metrics),
                    "fit_time_s": result.row["fit_time_s"],
                    "search_time_s": result.row["search_time_s"],
                    "scoring_time_s": result.row["scoring_time_s"],
                    "model_size_bytes": result.row["model_size_bytes"],
                }
            )
        )
        for index, search_row in enumerate(result.search_rows):
            with mlflow.start_run(run_name=f"{result.candidate.name}-{index}", nested=True):
                mlflow.log_params(flat_params(jsonable(search_row["params"])))
                mlflow.log_metrics({k: v for k, v in search_row.items() if k.startswith("validation_")})
