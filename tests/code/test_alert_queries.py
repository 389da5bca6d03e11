"""The alert queries, executed with duckdb-kql over events the app really emitted.

The app runs once (tests/telemetry_driver.py) with the real exporter pointed at the loopback sink; the
captured envelopes are copied with new times to build each scenario and loaded into a DuckDB table shaped
like Application Insights ``customEvents`` (timestamp, name, customDimensions). The scheduled query rule
is emulated as Azure runs it: at each evaluation the query sees only the last ``window`` of events and the
rule fires when the number of rows passes the threshold. Window, frequency and thresholds are the
parameter defaults of infra/main.bicep, and the bad-buzz query is substituted as infra/modules/alerts.bicep
does it.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb_kql
import pytest

from devtools.telemetry_sink import OFFLINE_ENV, IngestionSink
from serving import telemetry

REPO_ROOT = Path(__file__).resolve().parents[2]
QUERIES = REPO_ROOT / "infra" / "queries"
WRONG_QUERY = QUERIES / "alert-wrong-predictions.kql"
BUZZ_QUERY = QUERIES / "alert-bad-buzz.kql"
BUZZ_PARAMETER_LINES = ("let minTexts = 50;", "let negativeShare = 0.7;")
T0 = datetime(2026, 11, 23, 10, 0, 0)  # naive UTC, as DuckDB stores TIMESTAMP


MAIN_BICEP = REPO_ROOT / "infra" / "main.bicep"
ALERTS_BICEP = REPO_ROOT / "infra" / "modules" / "alerts.bicep"
# CONTRACT's values, used for any default main.bicep does not declare.
CONTRACT_DEFAULTS = {
    "wrongPredictionThreshold": "3",
    "wrongPredictionWindow": "PT5M",
    "badBuzzMinTexts": "50",
    "badBuzzNegativePercent": "70",
    "badBuzzWindow": "PT30M",
    "wrongPredictionEvaluationFrequency": "PT1M",
    "badBuzzEvaluationFrequency": "PT5M",
}
# How alerts.bicep turns its parameters into the bad-buzz query's first two lines.
MIN_TEXTS_LINE = "let minTexts = ${badBuzzMinTexts};"
SHARE_LINE = "let negativeShare = ${badBuzzNegativePercent} / 100.0;"


def rule_defaults() -> dict[str, str]:
    """Default values of the alert parameters in infra/main.bicep (``param name type = value``)."""
    text = MAIN_BICEP.read_text() if MAIN_BICEP.is_file() else ""
    found = dict(re.findall(r"^param\s+(\w+)\s+\w+\s*=\s*'?([^'\s]+)'?\s*$", text, flags=re.MULTILINE))
    return {name: found.get(name, value) for name, value in CONTRACT_DEFAULTS.items()}


def duration(iso: str) -> timedelta:
    """ISO 8601 durations as the rules use them: PT5M, PT30M, PT1H, PT1H30M."""
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", iso)
    assert match, f"unsupported duration {iso!r}"
    return timedelta(hours=int(match[1] or 0), minutes=int(match[2] or 0))


def deployed_bad_buzz_query(min_texts: str, percent: str) -> str:
    """The bad-buzz query as the alert rule receives it (the two let lines replaced)."""
    return (
        BUZZ_QUERY.read_text()
        .replace(BUZZ_PARAMETER_LINES[0], MIN_TEXTS_LINE.replace("${badBuzzMinTexts}", min_texts))
        .replace(BUZZ_PARAMETER_LINES[1], SHARE_LINE.replace("${badBuzzNegativePercent}", percent))
    )


@dataclass(frozen=True)
class Rule:
    """What a scheduledQueryRules resource evaluates: query, window, frequency, row-count condition."""

    query: str
    window: timedelta
    frequency: timedelta
    compare: Callable[[int, int], bool]
    threshold: int


def wrong_predictions_rule(query: str | None = None) -> Rule:
    # Count of rows >= threshold (3) within the window (5 minutes).
    defaults = rule_defaults()
    return Rule(
        query or WRONG_QUERY.read_text(),
        duration(defaults["wrongPredictionWindow"]),
        duration(defaults["wrongPredictionEvaluationFrequency"]),
        operator.ge,
        int(defaults["wrongPredictionThreshold"]),
    )


def bad_buzz_rule(query: str | None = None) -> Rule:
    # The query returns a row when >= 50 texts and >= 70% negatives in the window (30 minutes).
    defaults = rule_defaults()
    return Rule(
        query or deployed_bad_buzz_query(defaults["badBuzzMinTexts"], defaults["badBuzzNegativePercent"]),
        duration(defaults["badBuzzWindow"]),
        duration(defaults["badBuzzEvaluationFrequency"]),
        operator.gt,
        0,
    )


def test_rule_defaults_are_the_contract_thresholds():
    defaults = rule_defaults()
    assert defaults == CONTRACT_DEFAULTS


@pytest.mark.skipif(not ALERTS_BICEP.is_file(), reason="infra/modules/alerts.bicep is not written yet")
def test_alerts_bicep_substitutes_the_lines_these_tests_substitute():
    text = ALERTS_BICEP.read_text()
    for line in (*BUZZ_PARAMETER_LINES, MIN_TEXTS_LINE, SHARE_LINE):
        assert f"'{line}'" in text, line


# --- events the app emitted -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Envelopes from one run of the app: single-text predictions (negative and positive) and wrong
    predictions, grouped as negative scored / positive scored / wrong."""
    storage = tmp_path_factory.mktemp("telemetry-storage")
    with IngestionSink("ok") as sink:
        env = {key: value for key, value in os.environ.items() if "APPLICATIONINSIGHTS" not in key}
        env.update(
            OFFLINE_ENV, APPLICATIONINSIGHTS_CONNECTION_STRING=sink.connection_string, TMPDIR=str(storage)
        )
        result = subprocess.run(
            [sys.executable, "-m", "tests.telemetry_driver", "--predict", "8", "--wrong", "3", "--flush"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        sink.wait_for(11)
        envelopes = sink.envelopes
    groups: dict[str, list[dict]] = {"negative": [], "positive": [], "wrong": []}
    for envelope in envelopes:
        base = envelope["data"]["baseData"]
        if envelope["data"]["baseType"] != "EventData":
            continue
        if base["name"] == telemetry.WRONG_PREDICTION:
            groups["wrong"].append(envelope)
        elif base["name"] == telemetry.SENTIMENT_SCORED:
            assert base["properties"]["texts"] == "1"
            groups["negative" if base["properties"]["negatives"] == "1" else "positive"].append(envelope)
    counts = {group: len(found) for group, found in groups.items()}
    assert all(counts.values()), f"the run must emit negative, positive and wrong events: {counts}"
    return groups


def at(pool: list[dict], times: Iterable[datetime]) -> list[dict]:
    """Copies of captured envelopes (cycling through the pool) with their ``time`` rewritten."""
    chosen = []
    for index, moment in enumerate(times):
        envelope = copy.deepcopy(pool[index % len(pool)])
        envelope["time"] = moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        chosen.append(envelope)
    return chosen


def spread(count: int, start: datetime, span: timedelta) -> list[datetime]:
    """``count`` instants evenly from ``start`` to ``start + span`` (both included)."""
    step = span / max(count - 1, 1)
    return [start + step * index for index in range(count)]


# --- the rule, emulated -----------------------------------------------------------------------------


@functools.cache
def translated(query: str) -> str:
    """The query as DuckDB SQL (translated once: parsing KQL costs far more than running it here)."""
    return duckdb_kql.to_sql(query)


def load(envelopes: list[dict]):
    connection = duckdb_kql.connect()
    connection.sql("CREATE TABLE allEvents (timestamp TIMESTAMP, name VARCHAR, customDimensions JSON)")
    rows = [
        (
            datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).replace(tzinfo=None),
            envelope["data"]["baseData"]["name"],
            json.dumps(envelope["data"]["baseData"]["properties"]),
        )
        for envelope in envelopes
    ]
    connection.executemany("INSERT INTO allEvents VALUES (?, ?, ?)", rows)
    return connection


def rows_at(connection, rule: Rule, end: datetime) -> int:
    """Rows the query returns when the rule evaluates at ``end`` (it sees [end - window, end))."""
    start = end - rule.window
    connection.sql(
        "CREATE OR REPLACE VIEW customEvents AS SELECT * FROM allEvents "
        f"WHERE timestamp >= TIMESTAMP '{start.isoformat()}' AND timestamp < TIMESTAMP '{end.isoformat()}'"
    )
    return len(connection.sql(translated(rule.query)).fetchall())


def scheduled_firings(rule: Rule, envelopes: list[dict]) -> list[datetime]:
    """Evaluation times (every ``frequency`` from T0) at which the rule fires."""
    connection = load(envelopes)
    last = max(
        datetime.fromisoformat(e["time"].replace("Z", "+00:00")).replace(tzinfo=None) for e in envelopes
    )
    fired, end = [], T0 + rule.frequency
    while end <= last + rule.window + rule.frequency:
        if rule.compare(rows_at(connection, rule, end), rule.threshold):
            fired.append(end)
        end += rule.frequency
    return fired


def fires_at_any_alignment(rule: Rule, envelopes: list[dict]) -> bool:
    """Whether ANY window position fires: every distinct set of events a window can hold is seen by a
    window ending just after an event or starting exactly at one."""
    connection = load(envelopes)
    times = {datetime.fromisoformat(e["time"].replace("Z", "+00:00")).replace(tzinfo=None) for e in envelopes}
    ends = {moment + timedelta(microseconds=1) for moment in times} | {
        moment + rule.window for moment in times
    }
    return any(rule.compare(rows_at(connection, rule, end), rule.threshold) for end in sorted(ends))


# --- wrong predictions --------------------------------------------------------------------------------


def test_three_wrong_predictions_within_five_minutes_fire(emitted):
    moments = [T0 + timedelta(seconds=10), T0 + timedelta(minutes=2), T0 + timedelta(minutes=4, seconds=50)]
    events = at(emitted["wrong"], moments)
    assert scheduled_firings(wrong_predictions_rule(), events) == [T0 + timedelta(minutes=5)]


def test_wrong_predictions_about_ids_the_service_never_issued_do_not_fire(emitted):
    moments = spread(6, T0 + timedelta(seconds=10), timedelta(minutes=2))
    events = at(emitted["wrong"], moments)
    assert all(e["data"]["baseData"]["properties"]["matched_prediction"] == "true" for e in events)
    for envelope in events:
        envelope["data"]["baseData"]["properties"]["matched_prediction"] = "false"
    assert not fires_at_any_alignment(wrong_predictions_rule(), events)


def test_two_wrong_predictions_do_not_fire(emitted):
    events = at(emitted["wrong"], [T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)])
    assert scheduled_firings(wrong_predictions_rule(), events) == []
    assert not fires_at_any_alignment(wrong_predictions_rule(), events)


def test_three_wrong_predictions_spread_over_six_minutes_do_not_fire(emitted):
    events = at(emitted["wrong"], spread(3, T0 + timedelta(seconds=10), timedelta(minutes=6)))
    assert scheduled_firings(wrong_predictions_rule(), events) == []
    assert not fires_at_any_alignment(wrong_predictions_rule(), events)


def test_other_events_do_not_count_as_wrong_predictions(emitted):
    moments = spread(10, T0 + timedelta(seconds=10), timedelta(minutes=1))
    events = at(emitted["negative"], moments) + at(emitted["positive"], moments)
    assert not fires_at_any_alignment(wrong_predictions_rule(), events)


# --- bad buzz -----------------------------------------------------------------------------------------


def buzz(emitted, negatives: int, positives: int, start: timedelta, span: timedelta) -> list[dict]:
    """``negatives`` + ``positives`` single-text scorings, evenly mixed, over ``span`` from T0 + start."""
    labels = [((k + 0.5) / negatives, "negative") for k in range(negatives)]
    labels += [((k + 0.5) / positives, "positive") for k in range(positives)]
    moments = spread(len(labels), T0 + start, span)
    return [
        at(emitted[label], [moment])[0] for (_, label), moment in zip(sorted(labels), moments, strict=True)
    ]


def burst(emitted, negatives: int, positives: int) -> list[dict]:
    """Scorings between two evaluations (10:06 to 10:09), so each evaluation sees all of them or none."""
    return buzz(emitted, negatives, positives, start=timedelta(minutes=6), span=timedelta(minutes=3))


@pytest.mark.parametrize(("negatives", "positives"), [(35, 15), (70, 30), (50, 0)])
def test_bad_buzz_fires_at_seventy_percent_of_at_least_fifty_texts(emitted, negatives, positives):
    # Evaluations every 5 minutes over the last 30: the ones from 10:10 to 10:35 see the burst.
    fired = scheduled_firings(bad_buzz_rule(), burst(emitted, negatives, positives))
    assert fired == [T0 + timedelta(minutes=minute) for minute in range(10, 40, 5)]


@pytest.mark.parametrize(
    ("negatives", "positives", "why"),
    [
        (34, 16, "68% of 50"),
        (69, 31, "69% of 100"),
        (35, 14, "49 texts, 71%"),
        (49, 0, "49 texts, all negative"),
    ],
)
def test_bad_buzz_stays_quiet_just_below_either_bound(emitted, negatives, positives, why):
    assert scheduled_firings(bad_buzz_rule(), burst(emitted, negatives, positives)) == [], why


def test_bad_buzz_counts_only_texts_inside_the_window(emitted):
    # 35 negatives + 15 positives (70% of 50) spread over 45 minutes: no 30-minute window holds 50 texts.
    events = buzz(emitted, 35, 15, start=timedelta(minutes=1), span=timedelta(minutes=45))
    assert scheduled_firings(bad_buzz_rule(), events) == []
    assert scheduled_firings(bad_buzz_rule(), burst(emitted, 35, 15))


def test_bad_buzz_parameters_are_substituted_like_the_bicep_does(emitted):
    query = deployed_bad_buzz_query("10", "50")
    assert "let minTexts = 10;" in query and "let negativeShare = 50 / 100.0;" in query
    assert scheduled_firings(bad_buzz_rule(query), burst(emitted, 5, 5))
    assert not scheduled_firings(bad_buzz_rule(query), burst(emitted, 4, 5))
    assert not scheduled_firings(bad_buzz_rule(), burst(emitted, 5, 5))


# --- the files themselves -----------------------------------------------------------------------------


def event_names_in(query: str) -> set[str]:
    return set(re.findall(r'\bname\s*==\s*"([^"]+)"', query))


def dimensions_in(query: str) -> set[str]:
    return set(re.findall(r"customDimensions\.(\w+)", query))


def test_event_names_in_the_queries_are_the_code_constants():
    assert event_names_in(WRONG_QUERY.read_text()) == {telemetry.WRONG_PREDICTION}
    assert event_names_in(BUZZ_QUERY.read_text()) == {telemetry.SENTIMENT_SCORED}


def test_dimensions_in_the_queries_are_the_code_constants():
    assert dimensions_in(WRONG_QUERY.read_text()) <= {
        telemetry.FEEDBACK_ID,
        telemetry.PREDICTED_LABEL,
        telemetry.MODEL_VERSION,
        telemetry.MATCHED_PREDICTION,
    }
    assert dimensions_in(BUZZ_QUERY.read_text()) == {telemetry.TEXTS, telemetry.NEGATIVES}


def test_bad_buzz_query_starts_with_the_parameter_lines_bicep_replaces():
    assert tuple(BUZZ_QUERY.read_text().splitlines()[:2]) == BUZZ_PARAMETER_LINES


@pytest.mark.parametrize("path", [WRONG_QUERY, BUZZ_QUERY], ids=lambda path: path.name)
def test_queries_leave_the_time_window_to_the_rule(path: Path):
    query = path.read_text()
    assert duckdb_kql.validate(query) == []
    assert "ago(" not in query
    assert "timestamp >" not in query and "between" not in query


# --- the topic and drift rules --------------------------------------------------------------------------

RADAR_QUERIES = ("alert-topic-spike.kql", "alert-score-drift.kql", "alert-input-drift.kql")


@pytest.mark.parametrize("name", RADAR_QUERIES)
def test_radar_queries_run_in_duckdb_kql_and_read_the_telemetry_names(name):
    query = (QUERIES / name).read_text()
    assert duckdb_kql.validate(query) == []
    assert event_names_in(query) == {telemetry.SENTIMENT_SCORED}
    allowed = {telemetry.TEXTS, telemetry.SCORE_HISTOGRAM, telemetry.TOPICS, telemetry.UNKNOWN_SHARE}
    assert dimensions_in(query) <= allowed | {telemetry.EMPTY_AFTER_NORMALIZATION}
    # Only the spike rule reads past its window (two days, overrideQueryTimeRange), splitting on now().
    assert ("now()" in query) == (name == "alert-topic-spike.kql")
    assert "ago(" not in query


def test_the_spike_query_compares_the_last_hour_with_the_hours_before(emitted):
    """Captured app events: 10 quiet hours of 1 negative baggage text among 20, then an hour of 20 of 20."""
    from devtools.radar_simulator import Rule, bicep_defaults, deployed_query, evaluate, load_events

    negative = emitted["negative"][0]["data"]["baseData"]["properties"]
    positive = emitted["positive"][0]["data"]["baseData"]["properties"]
    assert "topics" in negative and "score_histogram" in negative
    events = []
    for hour in range(11):
        for minute in range(20):
            negative_text = minute == 0 or hour == 10
            dims = dict(negative if negative_text else positive)
            dims["topics"] = json.dumps({"baggage": [1, 1 if negative_text else 0]})
            events.append(
                (T0 + timedelta(hours=hour, minutes=minute * 3, seconds=30), telemetry.SENTIMENT_SCORED, dims)
            )
    values = bicep_defaults()
    rule = Rule(
        "topic-spike",
        deployed_query("alert-topic-spike.kql", values),
        timedelta(hours=1),
        timedelta(minutes=15),
        timedelta(days=2),
    )
    fired = evaluate(load_events(events), rule, T0 + timedelta(hours=10), T0 + timedelta(hours=11))
    # 5, 10, 15, 20 negatives in the hour at :15, :30, :45, :00: the floor (15) is reached at :45.
    assert [moment for moment, _ in fired] == [T0 + timedelta(hours=10, minutes=45), T0 + timedelta(hours=11)]
    assert fired[-1][1][0][0] == "baggage" and fired[-1][1][0][1] == 20
    quiet = evaluate(load_events(events), rule, T0 + timedelta(hours=2), T0 + timedelta(hours=10))
    assert quiet == []


def aggregated(envelopes: list[dict], window: timedelta = timedelta(seconds=60)) -> list[dict]:
    """What the app sends with SENTIMENT_SCORED_WINDOW_SECONDS=60: one SentimentScored per window, its
    counts summed, sent when the window ends (so later than the requests it counts)."""
    sums: dict[int, list[int]] = {}
    for envelope in envelopes:
        moment = datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).replace(tzinfo=None)
        properties = envelope["data"]["baseData"]["properties"]
        counts = sums.setdefault(int((moment - T0) / window), [0, 0])
        counts[0] += int(properties["texts"])
        counts[1] += int(properties["negatives"])
    out = []
    for index, (texts, negatives) in sorted(sums.items()):
        [envelope] = at(envelopes[:1], [T0 + window * (index + 1) - timedelta(microseconds=1)])
        envelope["data"]["baseData"]["properties"].update(texts=str(texts), negatives=str(negatives))
        out.append(envelope)
    return out


def test_bad_buzz_reads_the_same_day_alike_whether_scored_events_are_summed_or_not(emitted):
    """A simulated day (a background of one tweet a minute, 40 % negative; a bad buzz 10 hours in and a
    borderline rush 18 hours in) as one event per request and as the 60-s sums the app sends: the rule
    fires on the same evaluations, up to one evaluation at an episode's edge (a sum is sent up to 60 s
    after its requests)."""
    day = buzz(emitted, 576, 864, start=timedelta(0), span=timedelta(hours=24))
    day += buzz(emitted, 80, 20, start=timedelta(hours=10), span=timedelta(minutes=20))
    day += buzz(emitted, 45, 35, start=timedelta(hours=18), span=timedelta(minutes=25))
    per_request = set(scheduled_firings(bad_buzz_rule(), day))
    summed = set(scheduled_firings(bad_buzz_rule(), aggregated(day)))
    buzz_start = T0 + timedelta(hours=10)
    assert per_request and all(
        buzz_start < moment <= buzz_start + timedelta(hours=1) for moment in per_request
    )
    step = bad_buzz_rule().frequency
    for moment in per_request ^ summed:
        assert moment - step in per_request | summed or moment + step in per_request | summed, moment
    assert len(per_request ^ summed) <= 2
    assert sum(int(e["data"]["baseData"]["properties"]["texts"]) for e in aggregated(day)) == len(day)
