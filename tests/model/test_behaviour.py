"""CheckList-style behavioural suites (``training.behaviour``): the generator is reproducible and
well-formed, the runner counts failures right, and the committed model's failure rates are measured.

The negation and contrast rates of the committed n-gram model are printed, not asserted: a bag of
n-grams reads "was not terrible" as "terrible", which is the point of measuring it. Invariance to URLs,
@mentions and casing is asserted, since a model whose label moves with them is broken, whatever its
accuracy.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from training import behaviour
from training.behaviour import (
    LABELS,
    NEGATIVE,
    POSITIVE,
    InvCase,
    MftCase,
    Suite,
    generate_suites,
    render_markdown,
    run_behaviour_command,
    run_suites,
    score_with_model,
)
from training.config import SEED

# Largest share of pairs whose label may flip under a perturbation that keeps the meaning.
INVARIANCE_BOUND = 0.10
ASSERTED_INVARIANCES = ("urls", "mentions", "casing")


@pytest.fixture(scope="module")
def suites() -> list[Suite]:
    return generate_suites(SEED)


# ------------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic_and_seeded(suites):
    assert generate_suites(SEED) == suites
    other = generate_suites(SEED + 1)
    assert [s.name for s in other] == [s.name for s in suites]
    assert other != suites  # the seed drives the sampling


def test_every_capability_of_the_brief_has_a_suite(suites):
    types = {s.name: s.type for s in suites}
    assert {name for name, kind in types.items() if kind == "INV"} == {
        "names", "urls", "mentions", "casing", "airline_hashtag",
    }  # fmt: skip
    assert {s.capability for s in suites if s.type == "MFT"} == {
        "negation",
        "contrast",
        "intensifiers",
        "emoji",
    }
    assert len({s.name for s in suites}) == len(suites)


def test_suites_are_well_formed(suites):
    for suite in suites:
        assert len(suite.cases) >= 50, suite.name
        assert len(suite.cases) <= behaviour.MAX_CASES, suite.name
        if suite.type == "MFT":
            assert all(isinstance(case, MftCase) for case in suite.cases), suite.name
            texts = [case.text for case in suite.cases]
            assert len(set(texts)) == len(texts), f"{suite.name} repeats a text"
            assert {case.expected for case in suite.cases} <= set(LABELS), suite.name
            assert all(text.strip() for text in texts), suite.name
        else:
            assert suite.type == "INV"
            assert all(isinstance(case, InvCase) for case in suite.cases), suite.name
            originals = [case.original for case in suite.cases]
            assert len(set(originals)) == len(originals), f"{suite.name} repeats an original"
            assert all(case.original != case.perturbed for case in suite.cases), suite.name


def test_suites_probe_what_they_claim(suites):
    by_name = {s.name: s for s in suites}
    assert all(" not " in c.text or "n't " in c.text for c in by_name["negated_negative"].cases) and all(
        c.expected == POSITIVE for c in by_name["negated_negative"].cases
    )
    assert all("never" in c.text for c in by_name["never_again"].cases)
    for name in ("emoji_negative", "emoji_positive"):
        assert all(not any(ch.isalnum() for ch in c.text) for c in by_name[name].cases), name
    assert all(c.original.lower() == c.perturbed.lower() for c in by_name["casing"].cases)
    mentions = by_name["mentions"].cases
    assert all("@" in c.perturbed for c in mentions)
    assert all(c.perturbed.endswith(tuple(behaviour.HASHTAGS)) for c in by_name["airline_hashtag"].cases)
    url_pairs = by_name["urls"].cases
    assert all(any(url in c.perturbed for url in behaviour.URLS) for c in url_pairs)
    assert any(any(url in c.original for url in behaviour.URLS) for c in url_pairs)  # changed, not only added
    names = by_name["names"].cases
    words = [(set(re.findall(r"\w+", c.original)), set(re.findall(r"\w+", c.perturbed))) for c in names]
    assert all(len(a ^ b) == 2 and a ^ b <= set(behaviour.NAMES) for a, b in words)


# ------------------------------------------------------------------------------------------- runner


def keyword_scorer(calls: list[list[str]]):
    """P(negative) 0.9 for texts with "bad" (any case), 0.5 for "meh", else 0.1; records its calls."""

    def score(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([0.9 if "bad" in t.lower() else 0.5 if "meh" in t else 0.1 for t in texts])

    return score


def test_runner_counts_failures_with_a_known_scorer():
    mft = Suite(
        "toy_mft", "toy", "MFT", "toy",
        (
            MftCase("bad seat", NEGATIVE),  # right
            MftCase("good seat", POSITIVE),  # right
            MftCase("not bad at all", POSITIVE),  # wrong: 0.9
            MftCase("awful seat", NEGATIVE),  # wrong: 0.1
            MftCase("meh seat", NEGATIVE),  # right: 0.5 is the threshold, inclusive
        ),
    )  # fmt: skip
    inv = Suite(
        "toy_inv", "toy", "INV", "toy",
        (
            InvCase("good flight", "GOOD FLIGHT"),  # same label
            InvCase("good flight", "good flight, bad wifi"),  # flips
            InvCase("Bad flight", "bad flight http://t.co/x"),  # same label
        ),
    )  # fmt: skip
    calls: list[list[str]] = []
    report = run_suites(keyword_scorer(calls), 0.5, suites=[mft, inv])

    assert len(calls) == 1  # one batch, each distinct text once, raw (casing kept)
    assert sorted(calls[0]) == sorted(set(calls[0])) and "GOOD FLIGHT" in calls[0]
    assert report["threshold"] == 0.5 and list(report["suites"]) == ["toy_mft", "toy_inv"]
    first = report["suites"]["toy_mft"]
    assert (first["type"], first["n"], first["failures"]) == ("MFT", 5, 2)
    assert first["failure_rate"] == pytest.approx(0.4)
    assert {e["text"] for e in first["examples"]} == {"not bad at all", "awful seat"}
    assert all(e["predicted"] != e["expected"] for e in first["examples"])
    second = report["suites"]["toy_inv"]
    assert (second["type"], second["n"], second["failures"]) == ("INV", 3, 1)
    assert second["examples"] == [
        {
            "original": "good flight",
            "perturbed": "good flight, bad wifi",
            "original_label": POSITIVE,
            "perturbed_label": NEGATIVE,
            "original_probability": 0.1,
            "perturbed_probability": 0.9,
        }
    ]


def test_runner_keeps_at_most_three_examples_most_confident_first():
    cases = (*(MftCase(f"bad {i}", POSITIVE) for i in range(6)), MftCase("meh", POSITIVE))
    report = run_suites(keyword_scorer([]), 0.5, suites=[Suite("s", "c", "MFT", "d", cases)])
    result = report["suites"]["s"]
    assert result["failures"] == 7 and result["failure_rate"] == 1.0
    assert [e["text"] for e in result["examples"]] == ["bad 0", "bad 1", "bad 2"]


def test_runner_on_generated_suites_matches_a_direct_count(suites):
    report = run_suites(keyword_scorer([]), 0.5, suites=suites)
    for suite in suites:
        if suite.type == "MFT":
            wrong = sum(("bad" in c.text.lower()) != (c.expected == NEGATIVE) for c in suite.cases)
        else:
            wrong = sum(("bad" in c.original.lower()) != ("bad" in c.perturbed.lower()) for c in suite.cases)
        assert report["suites"][suite.name]["failures"] == wrong, suite.name


@pytest.mark.parametrize(
    "answer", [lambda n: np.zeros(n - 1), lambda n: np.full(n, 1.5), lambda n: np.full(n, np.nan)]
)
def test_runner_refuses_a_scorer_that_does_not_answer_each_text(suites, answer):
    with pytest.raises(ValueError, match="scorer"):
        run_suites(lambda texts: answer(len(texts)), 0.5, suites=suites[:2])


# ------------------------------------------------------------------------------------------- committed model


@pytest.fixture(scope="module")
def committed_report(repo_root, tmp_path_factory):
    path = repo_root / "model" / "sentiment.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: export a model with `python -m training export`")
    out = tmp_path_factory.mktemp("behaviour")
    report = run_behaviour_command(path, out / "behaviour.json", out / "behaviour.md")
    print(f"\nbehaviour of {path.name} (threshold {report['threshold']:.3f}):")
    for result in report["suites"].values():
        print(f"  {result['name']:<24} {result['type']} n={result['n']:<4} {result['failure_rate']:6.1%}")
    return report, out


def test_committed_model_rates_are_measured_for_every_suite(committed_report, suites):
    report, _ = committed_report
    assert list(report["suites"]) == [s.name for s in suites]
    for result in report["suites"].values():
        assert result["n"] >= 50
        assert 0 <= result["failures"] <= result["n"]
        assert len(result["examples"]) == min(behaviour.EXAMPLES, result["failures"])


@pytest.mark.parametrize("name", ASSERTED_INVARIANCES)
def test_committed_model_is_invariant_to_urls_mentions_and_casing(committed_report, name):
    result = committed_report[0]["suites"][name]
    assert result["failure_rate"] <= INVARIANCE_BOUND, result["examples"]


def test_scorer_from_a_model_file_matches_the_report(repo_root, committed_report, suites):
    score, threshold = score_with_model(repo_root / "model" / "sentiment.onnx")
    report, _ = committed_report
    assert threshold == report["threshold"]
    again = run_suites(score, threshold, suites=suites)
    assert again["suites"] == report["suites"]


def test_written_reports_are_what_the_runner_returned(committed_report):
    report, out = committed_report
    assert json.loads((out / "behaviour.json").read_text(encoding="utf-8")) == report
    markdown = (out / "behaviour.md").read_text(encoding="utf-8")
    assert markdown == render_markdown(report)
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(report["suites"])
    for row, result in zip(rows, report["suites"].values(), strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[0] == result["name"] and cells[2] == result["type"] and cells[3] == str(result["n"])
        assert cells[4] == f"{result['failure_rate']:.1%}"
        if result["examples"]:
            first = result["examples"][0]
            assert (first.get("text") or first["original"]).split()[0] in cells[5]
        else:
            assert cells[5] == ""
