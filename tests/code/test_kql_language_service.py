"""Every KQL query of the project (alert rules and workbook panels, infra/queries/) parses and
analyses with no diagnostic against the Application Insights schemas, using the official Kusto
language service; the event and dimension names it reads are the ones serving/telemetry.py emits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from serving import telemetry
from serving.topics import default_matcher
from tests.kql_language import analyse, describe

QUERIES_DIR = Path(__file__).resolve().parents[2] / "infra" / "queries"
ALERT_FILES = (
    "alert-wrong-predictions.kql",
    "alert-bad-buzz.kql",
    "alert-topic-spike.kql",
    "alert-score-drift.kql",
    "alert-input-drift.kql",
)
# Alerts on the Log Analytics workspace itself, analysed with the columns of the workspace function they read.
WORKSPACE_FILES = {
    "alert-daily-cap.kql": "let _LogOperation = datatable(TimeGenerated: datetime, Category: string, "
    "Operation: string, Level: string, Detail: string, _ResourceId: string)[];\n",
}
WORKBOOK_FILES = (
    "workbook-prediction-volume.kql",
    "workbook-negative-share.kql",
    "workbook-wrong-prediction-rate.kql",
    "workbook-request-latency.kql",
    "workbook-request-failures.kql",
    "workbook-topic-volume.kql",
    "workbook-topic-negative-share.kql",
    "workbook-score-histogram.kql",
    "workbook-score-psi.kql",
    "workbook-unknown-share.kql",
)
DIMENSION_NAMES = {
    telemetry.MODEL_VERSION,
    telemetry.TEXTS,
    telemetry.NEGATIVES,
    telemetry.MEAN_NEGATIVE_PROBABILITY,
    telemetry.FEEDBACK_ID,
    telemetry.PREDICTION_ID,
    telemetry.PREDICTED_LABEL,
    telemetry.NEGATIVE_PROBABILITY,
    telemetry.TEXT,
    telemetry.MATCHED_PREDICTION,
    telemetry.SCORE_HISTOGRAM,
    telemetry.TOPICS,
    telemetry.UNKNOWN_SHARE,
    telemetry.EMPTY_AFTER_NORMALIZATION,
}
# String literals a query may hold besides event names: the value of a boolean dimension.
VALUE_LITERALS = {"true"} | set(default_matcher().names)


def _queries() -> dict[str, str]:
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(QUERIES_DIR.glob("*.kql"))
        if path.name not in WORKSPACE_FILES
    }


def _workspace_queries() -> dict[str, str]:
    return {
        name: schema + (QUERIES_DIR / name).read_text(encoding="utf-8")
        for name, schema in WORKSPACE_FILES.items()
    }


def _code(text: str) -> str:
    """The query without its // comments (comments may name events in prose)."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def test_the_query_files_are_the_expected_set():
    assert set(_queries()) == set(ALERT_FILES) | set(WORKBOOK_FILES)
    assert {p.name for p in QUERIES_DIR.glob("*.kql")} == set(_queries()) | set(WORKSPACE_FILES)


BROKEN = {
    "broken:column": 'customEvents | where nmae == "WrongPrediction"',
    "broken:function": "requests | summarize percentil(duration, 95) by bin(timestamp, 5m)",
    "broken:table": 'customEvent | where name == "WrongPrediction"',
    "broken:syntax": 'customEvents | where name == "WrongPrediction" |',
}
SCHEMA_PROBE = {
    "probe:requests": "requests | summarize avg(duration), countif(success == false) by resultCode, name",
    "probe:customEvents": "customEvents | summarize count() by name, tostring(customDimensions.texts)",
}


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, str], dict[str, list[dict]]]:
    """One run of the language service over every query file plus the probes (node starts once)."""
    texts = {**_queries(), **_workspace_queries(), **BROKEN, **SCHEMA_PROBE}
    return texts, analyse(texts)


def test_every_query_analyses_clean_against_the_app_insights_schemas(results):
    texts, diagnostics = results
    files = {name: found for name, found in diagnostics.items() if name.endswith(".kql")}
    assert set(files) == set(_queries()) | set(WORKSPACE_FILES)
    assert not any(files.values()), describe(files, texts)


def test_a_misspelt_column_function_or_table_or_a_syntax_error_is_reported(results):
    _, diagnostics = results
    assert {d["code"] for d in diagnostics["broken:column"]} == {"KS142"}
    assert "nmae" in diagnostics["broken:column"][0]["message"]
    assert "KS211" in {d["code"] for d in diagnostics["broken:function"]}
    assert "percentil" in " ".join(d["message"] for d in diagnostics["broken:function"])
    assert diagnostics["broken:table"], "an unknown table must be reported"
    assert diagnostics["broken:syntax"], "a syntax error must be reported"
    assert all(d["severity"] == "Error" for name in BROKEN for d in diagnostics[name])


def test_the_schemas_know_the_columns_the_queries_read(results):
    texts, diagnostics = results
    probes = {name: diagnostics[name] for name in SCHEMA_PROBE}
    assert not any(probes.values()), describe(probes, texts)


@pytest.mark.parametrize("name", ALERT_FILES + WORKBOOK_FILES)
def test_event_names_in_the_queries_are_the_telemetry_constants(name):
    code = _code((QUERIES_DIR / name).read_text(encoding="utf-8"))
    literals = set(re.findall(r'"([^"]*)"', code)) | set(re.findall(r"'([^']*)'", code))
    compared = set(re.findall(r'\bname\s*==\s*"([^"]+)"', code))
    for group in re.findall(r"\bname\s+in\s*\(([^)]*)\)", code):
        compared |= set(re.findall(r'"([^"]+)"', group))
    if name.startswith("workbook-request"):
        assert "customEvents" not in code and not compared
        return
    assert compared, f"{name} selects no event by name"
    assert compared <= set(telemetry.EVENT_NAMES), f"{name}: {compared - set(telemetry.EVENT_NAMES)}"
    assert literals <= set(telemetry.EVENT_NAMES) | VALUE_LITERALS, f"{name}: unexpected literals {literals}"


@pytest.mark.parametrize("name", ALERT_FILES + WORKBOOK_FILES)
def test_dimension_names_in_the_queries_are_the_telemetry_constants(name):
    code = _code((QUERIES_DIR / name).read_text(encoding="utf-8"))
    used = set(re.findall(r"customDimensions\.(\w+)", code))
    used |= set(re.findall(r"customDimensions\[\s*[\"'](\w+)[\"']\s*\]", code))
    assert used <= DIMENSION_NAMES, f"{name}: unknown dimensions {used - DIMENSION_NAMES}"


def test_each_alert_reads_the_event_it_is_about():
    wrong = _code((QUERIES_DIR / "alert-wrong-predictions.kql").read_text(encoding="utf-8"))
    buzz = _code((QUERIES_DIR / "alert-bad-buzz.kql").read_text(encoding="utf-8"))
    assert f'"{telemetry.WRONG_PREDICTION}"' in wrong
    assert f'"{telemetry.SENTIMENT_SCORED}"' in buzz
    assert f"customDimensions.{telemetry.TEXTS}" in buzz
    assert f"customDimensions.{telemetry.NEGATIVES}" in buzz


def test_queries_leave_the_time_window_to_the_rule_or_the_workbook():
    # The scheduled query rule (windowSize) and the workbook (time range) apply the window; a
    # hard-coded ago() would silently disagree with them.
    for name, text in _queries().items():
        assert "ago(" not in _code(text), name


@pytest.mark.parametrize("name", WORKBOOK_FILES)
def test_workbook_queries_carry_the_grain_line_the_workbook_replaces(name):
    lines = _code((QUERIES_DIR / name).read_text(encoding="utf-8")).split("\n")
    assert "let grain = 15m;" in [line.strip() for line in lines]
    assert "bin(timestamp, grain)" in "\n".join(lines)
