"""Precision and recall of the topic matcher on the labelled sample ``tests/data/topic_sample.jsonl``.

``python -m devtools.topic_quality`` prints the figures as JSON; ``--doc docs/reference/topics.md``
also rewrites the table between the markers in that page, so the published figures are the measured
ones (a test checks they still are).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.normalizer import normalize
from serving.topics import TopicMatcher, default_matcher

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "tests" / "data" / "topic_sample.jsonl"
START, END = "<!-- topic-quality:start -->", "<!-- topic-quality:end -->"


def read_sample(path: Path = SAMPLE) -> list[tuple[str, set[str]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append((str(row["text"]), set(row["topics"])))
    return rows


def _ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 3) if denominator else 0.0


def measure(matcher: TopicMatcher | None = None, path: Path = SAMPLE) -> dict:
    """Per topic and micro-averaged precision, recall and F1, plus the sample's size."""
    matcher = matcher or default_matcher()
    sample = read_sample(path)
    counts = {topic: [0, 0, 0] for topic in matcher.names}  # true positives, false positives, misses
    exact = 0
    for text, expected in sample:
        found = set(matcher.match(normalize(text)))
        exact += found == expected
        for topic in matcher.names:
            counts[topic][0] += topic in found and topic in expected
            counts[topic][1] += topic in found and topic not in expected
            counts[topic][2] += topic in expected and topic not in found

    def scores(tp: int, fp: int, fn: int) -> dict:
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}

    totals = [sum(values[i] for values in counts.values()) for i in range(3)]
    return {
        "lexicon_version": matcher.version,
        "texts": len(sample),
        "texts_without_topic": sum(not expected for _, expected in sample),
        "texts_with_several_topics": sum(len(expected) > 1 for _, expected in sample),
        "exact_match_share": _ratio(exact, len(sample)),
        "micro": scores(*totals),
        "topics": {topic: scores(*values) for topic, values in counts.items()},
    }


def _cells(row: dict) -> str:
    return f"{row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']}"


def markdown_table(figures: dict) -> str:
    lines = ["| topic | precision | recall | F1 | texts labelled |", "|---|---|---|---|---|"]
    for topic, row in figures["topics"].items():
        lines.append(f"| `{topic}` | {_cells(row)} |")
    micro = figures["micro"]
    lines.append(f"| **micro** | {_cells(micro)} |")
    lines.append("")
    lines.append(
        f"Lexicon version {figures['lexicon_version']}, {figures['texts']} texts "
        f"({figures['texts_without_topic']} without a topic, {figures['texts_with_several_topics']} with "
        f"several); exact topic set found for {figures['exact_match_share']:.1%} of them."
    )
    return "\n".join(lines)


def rewrite_doc(path: Path, figures: dict) -> None:
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{markdown_table(figures)}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, help="page whose marked table is rewritten with the figures")
    args = parser.parse_args(argv)
    figures = measure()
    if args.doc:
        rewrite_doc(args.doc, figures)
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
