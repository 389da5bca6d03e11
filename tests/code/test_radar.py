"""The bad-buzz radar end to end: a simulated week of the app's own SentimentScored events, every
topic and drift alert query run on it as the scheduled rules run them (devtools/radar_simulator.py),
and the rule x episode table that docs/reference/alerts.md publishes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from devtools import radar_simulator as radar

ALERTS_BICEP = radar.REPO_ROOT / "infra" / "modules" / "alerts.bicep"
ALERTS_DOC = radar.REPO_ROOT / "docs" / "reference" / "alerts.md"
# Each rule fires on its episodes and on nothing else: not on the busy Monday, not on normal days.
EXPECTED = {
    "topic-spike": {"baggage_spike"},
    "safety-spike": {"safety_incident"},
    "score-drift": {"score_shift"},
    "input-drift": {"foreign_flood", "empty_client"},
}


@pytest.fixture(scope="module")
def simulated() -> dict:
    """One run of the simulator in its own process (it imports and indexes the app itself)."""
    done = subprocess.run(
        [sys.executable, "-m", "devtools.radar_simulator"],
        cwd=radar.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_every_rule_fires_exactly_on_its_episodes(simulated):
    fired = {name: {k for k, v in rule["fired"].items() if v} for name, rule in simulated["rules"].items()}
    assert fired == EXPECTED
    every_episode = {e.name for e in radar.EPISODES} - {"busy_monday"}
    assert set().union(*EXPECTED.values()) == every_episode


def test_the_spike_alert_names_the_topic(simulated):
    assert simulated["rules"]["topic-spike"]["sample_rows"][0][0] == "baggage"
    assert simulated["rules"]["safety-spike"]["sample_rows"][0][0] == "safety"


def test_the_events_are_the_apps_windows_with_every_drift_dimension(simulated):
    assert simulated["events"] > 7_000 and simulated["texts"] > 15_000
    assert len(simulated["baseline"]) == 10 and sum(simulated["baseline"]) > 0


def test_the_published_table_is_the_simulated_one(simulated):
    page = ALERTS_DOC.read_text(encoding="utf-8")
    published = page.split(radar.DOC_START, 1)[1].split(radar.DOC_END, 1)[0].strip()
    assert published == radar.markdown_table(simulated), "run python -m devtools.radar_simulator --doc ..."


def test_the_bicep_substitutes_the_lines_the_simulator_substitutes():
    bicep = ALERTS_BICEP.read_text(encoding="utf-8")
    for file, lines in [*radar.SUBSTITUTIONS.items(), ("alert-topic-spike.kql", radar.SAFETY_LINES)]:
        query = (radar.QUERIES / file).read_text(encoding="utf-8")
        assert f"loadTextContent('../queries/{file}')" in bicep
        for line, template in lines.items():
            assert line in query.splitlines(), (file, line)
            assert f"'{line}', '{template}'" in bicep, (file, line)


def test_every_parameter_the_rules_use_has_a_default_in_main_bicep():
    defaults = radar.bicep_defaults()
    used = set()
    for lines in [*radar.SUBSTITUTIONS.values(), radar.SAFETY_LINES]:
        for template in lines.values():
            used |= set(re.findall(r"\$\{(\w+)", template))
    assert used - {"scoreBaselineLiteral"} <= set(defaults)
    assert "var scoreBaselineLiteral = string(scoreBaselineHistogram)" in ALERTS_BICEP.read_text()
    assert json.loads(defaults["scoreBaselineHistogram"]) == [1] * 10
