"""A simulated week of SentimentScored events, produced by the app itself, and the alert rules run on it.

Texts come from templates per topic and sentiment; each simulated minute's texts are sent as one batch
to the registered ``predict`` function (the real HTTP handler, model and telemetry code), and the
minute's SentimentScored window is flushed and captured from the app's event logger: the events are
the app's own, the simulator only stamps their time. Traffic follows a daily and a weekly rhythm.
Two warm-up days (the spike rule's history) precede the week, which holds the injected episodes:

- ``busy_monday``: normal traffic at 1.8x the volume all day (no rule may fire);
- ``baggage_spike``: three hours of extra negative baggage tweets;
- ``safety_incident``: an hour of negative tweets about a safety scare (the severity-0 rule);
- ``foreign_flood``: four hours where most texts are in languages the model never saw;
- ``empty_client``: two hours of a broken client sending texts that normalize to nothing;
- ``score_shift``: a day and a half where lukewarm, topic-less texts slowly take over.

Every alert query of infra/queries/ then runs in duckdb-kql the way the scheduled rule evaluates it
(its time range ending at each evaluation, ``now()`` pinned to it), with the parameter defaults of
infra/main.bicep substituted like infra/modules/alerts.bicep does, and the firings are attributed to
the episodes. ``python -m devtools.radar_simulator`` prints the rule x episode table as JSON;
``--doc docs/reference/alerts.md`` rewrites the table in that page.

The committed model predates the n-gram coverage outputs, so by default a stand-in model with them is
fitted on English templates of the same kind and exported with the project's exporter (its validation
histogram is the score baseline, as in a real export); ``--model`` serves another file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
QUERIES = REPO_ROOT / "infra" / "queries"
MAIN_BICEP = REPO_ROOT / "infra" / "main.bicep"
START = datetime(2026, 11, 14)  # a Saturday: two warm-up days, then Monday 16 to Sunday 22
WEEK_START = START + timedelta(days=2)
END = START + timedelta(days=9)
DOC_START, DOC_END = "<!-- radar-table:start -->", "<!-- radar-table:end -->"


@dataclass(frozen=True)
class Episode:
    name: str
    start: datetime
    end: datetime
    description: str


EPISODES = (
    Episode("busy_monday", datetime(2026, 11, 16), datetime(2026, 11, 17), "1.8x normal traffic all day"),
    Episode(
        "baggage_spike",
        datetime(2026, 11, 17, 14),
        datetime(2026, 11, 17, 17),
        "+70 negative baggage texts/h",
    ),
    Episode(
        "foreign_flood", datetime(2026, 11, 19, 9), datetime(2026, 11, 19, 13), "+150 non-English texts/h"
    ),
    Episode(
        "safety_incident", datetime(2026, 11, 18, 19), datetime(2026, 11, 18, 20), "+15 negative safety texts"
    ),
    Episode("empty_client", datetime(2026, 11, 20, 15), datetime(2026, 11, 20, 17), "+80 empty texts/h"),
    Episode(
        "score_shift",
        datetime(2026, 11, 21, 6),
        datetime(2026, 11, 22, 18),
        "lukewarm topic-less texts from 0 to 70% of traffic",
    ),
)
NORMAL = "normal traffic"

# --- texts ------------------------------------------------------------------------------------------

TOPIC_TEXTS = {
    "baggage": (
        [
            "lost my bag again, nobody knows where it is",
            "my suitcase came back broken, thanks for nothing",
            "waited an hour at baggage claim, terrible",
            "they charged me twice for my luggage, awful",
        ],
        ["my bag arrived first on the belt, great job", "lovely, they delivered my suitcase to the hotel"],
    ),
    "delay": (
        [
            "delayed three hours with no information, awful",
            "another delay, missed my meeting, so angry",
            "stuck on the tarmac for two hours, horrible",
        ],
        ["on time and smooth, thank you", "landed early, great flight"],
    ),
    "cancellation": (
        ["flight cancelled at midnight, disgusting service", "they cancelled my flight again, worst airline"],
        ["glad my flight was not cancelled, thanks for the update"],
    ),
    "refund": (
        ["still no refund after two months, this is theft", "they refuse my refund, shameful"],
        ["got my refund in three days, thank you"],
    ),
    "customer_service": (
        ["two hours on hold with customer service, useless", "the agent hung up on me, rude"],
        ["the agent was so helpful and kind, thank you"],
    ),
    "booking": (
        ["the website crashed while booking, so frustrating", "cannot check in on the app, broken again"],
        ["booked my holiday in two minutes, love the app"],
    ),
    "crew": (
        ["the crew was rude and ignored us", "flight attendant yelled at my kid, unacceptable"],
        ["the crew was amazing, so friendly", "best pilot ever, smooth landing, thank you crew"],
    ),
    "comfort": (
        ["the seat was broken and the legroom awful", "no wifi and cold food, miserable"],
        ["comfy seats and great snacks, loved it", "the wifi worked all flight, great"],
    ),
    "safety": (
        ["smoke in the cabin and no announcement, terrifying", "emergency landing, everyone scared"],
        ["scary turbulence but the crew kept us safe, thank you"],
    ),
}
# Topic shares of normal traffic (the rest has no topic) and the negative share within each.
TOPIC_SHARE = {
    "baggage": 0.08,
    "delay": 0.12,
    "cancellation": 0.04,
    "refund": 0.04,
    "customer_service": 0.06,
    "booking": 0.06,
    "crew": 0.05,
    "comfort": 0.06,
    "safety": 0.01,
}
NEGATIVE_SHARE = 0.55
NO_TOPIC = (
    ["worst airline ever, never again", "so disappointed with this trip", "hate flying with you"],
    [
        "heading to barcelona for the weekend, so happy",
        "love this airline, see you next month",
        "just landed, home sweet home, great trip",
        "beautiful sunset from the plane window",
    ],
)
LUKEWARM = [
    "flight was ok i guess",
    "it was fine, nothing special",
    "meh, average trip, so so",
    "the flight happened, that is all",
    "okay-ish, normal flight",
]
FOREIGN = [
    "el vuelo llego con retraso otra vez",
    "muy mala experiencia con la aerolinea",
    "der flug war wieder verspatet, schrecklich",
    "vol annule sans explication, honteux",
    "bagagli persi di nuovo, pessimo servizio",
    "o voo atrasou quatro horas, horrivel",
    "gracias por el vuelo, muy bien",
    "merci pour ce vol tres agreable",
]
EMPTY = ["...", "…", "- -", "東京", "Рейс"]
# Texts per hour by hour of day (UTC), and by weekday (Monday first).
HOURLY = [
    20,
    12,
    8,
    6,
    6,
    10,
    30,
    70,
    110,
    130,
    140,
    140,
    150,
    140,
    130,
    130,
    140,
    150,
    160,
    150,
    120,
    90,
    60,
    35,
]
WEEKDAY = [1.0, 1.0, 1.0, 1.05, 1.15, 0.9, 0.95]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: the means here are small (a few texts a minute)."""
    limit, k, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _normal_text(rng: random.Random) -> str:
    roll = rng.random()
    for topic, share in TOPIC_SHARE.items():
        if roll < share:
            negative, positive = TOPIC_TEXTS[topic]
            return rng.choice(negative if rng.random() < NEGATIVE_SHARE else positive)
        roll -= share
    return rng.choice(NO_TOPIC[0] if rng.random() < 0.3 else NO_TOPIC[1])


def _active(moment: datetime, name: str) -> float:
    """0..1: how far into episode ``name`` the moment is, or -1 outside it."""
    episode = next(e for e in EPISODES if e.name == name)
    if not episode.start <= moment < episode.end:
        return -1.0
    return (moment - episode.start) / (episode.end - episode.start)


def minute_texts(moment: datetime, rng: random.Random) -> list[str]:
    """The texts sent during the minute starting at ``moment``."""
    rate = HOURLY[moment.hour] * WEEKDAY[moment.weekday()] / 60
    if _active(moment, "busy_monday") >= 0:
        rate *= 1.8
    texts = [_normal_text(rng) for _ in range(_poisson(rng, rate))]
    shift = _active(moment, "score_shift")
    if shift >= 0:
        texts = [rng.choice(LUKEWARM) if rng.random() < 0.7 * shift else text for text in texts]
    if _active(moment, "baggage_spike") >= 0:
        texts += [rng.choice(TOPIC_TEXTS["baggage"][0]) for _ in range(_poisson(rng, 70 / 60))]
    if _active(moment, "safety_incident") >= 0:
        texts += [rng.choice(TOPIC_TEXTS["safety"][0]) for _ in range(_poisson(rng, 15 / 60))]
    if _active(moment, "foreign_flood") >= 0:
        texts += [rng.choice(FOREIGN) for _ in range(_poisson(rng, 150 / 60))]
    if _active(moment, "empty_client") >= 0:
        texts += [rng.choice(EMPTY) for _ in range(_poisson(rng, 80 / 60))]
    rng.shuffle(texts)
    return texts


# --- the stand-in model -----------------------------------------------------------------------------


def build_stand_in_model(directory: Path, seed: int = 11) -> Path:
    """A model with the n-gram coverage outputs, fitted on English texts of the simulator's kind plus
    the labelled topic sample, exported with the project's exporter; its validation histogram is the
    histogram of a fresh normal-traffic sample (training's validation split plays that part)."""
    from serving.normalizer import normalize
    from training.export.artifact import export_model
    from training.modeling.text_model import TweetSentimentModel
    from training.modeling.train import score_histogram

    rng = random.Random(seed)
    texts, labels = [], []
    for negative, positive in [*TOPIC_TEXTS.values(), NO_TOPIC]:
        texts += negative + positive
        labels += [0] * len(negative) + [1] * len(positive)
    texts += LUKEWARM
    labels += [0, 0, 0, 0, 0]  # mildly negative: the shift moves the histogram out of its usual bins
    sample = (REPO_ROOT / "tests" / "data" / "topic_sample.jsonl").read_text(encoding="utf-8").splitlines()
    extra = [json.loads(line)["text"] for line in sample if line.strip()]
    texts += extra
    labels += [rng.randint(0, 1) for _ in extra]  # only their words matter here, not their labels
    model = TweetSentimentModel(word_ngram_range=(1, 2), norm="occurrence_l2").fit(
        [normalize(t) for t in texts], labels
    )
    validation = [normalize(_normal_text(rng)) for _ in range(2000)]
    from training.metrics import negative_probability

    metadata = {
        "training_data_fingerprint": "radar-simulator-stand-in",
        "validation_histogram": score_histogram(negative_probability(model, validation)),
    }
    path = directory / "stand-in.onnx"
    export_model(model, path, texts[:50], metadata)
    return path


# --- running the app --------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Keeps the custom events the app logs (name + dimensions)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[str, dict[str, str]]] = []
        self._standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def emit(self, record: logging.LogRecord) -> None:
        from serving.telemetry import CUSTOM_EVENT_ATTRIBUTE

        name = record.__dict__.get(CUSTOM_EVENT_ATTRIBUTE)
        if name:
            dims = {k: v for k, v in record.__dict__.items() if k not in self._standard}
            dims.pop(CUSTOM_EVENT_ATTRIBUTE)
            self.events.append((str(name), dims))


def simulate(model_path: Path, seed: int = 2026) -> list[tuple[datetime, str, dict[str, str]]]:
    """Every SentimentScored event of the simulated days, as the app emitted them, with their times.
    Imports the app: call once per process, with the settings below not yet read."""
    os.environ["MODEL_PATH"] = str(model_path)
    os.environ["SENTIMENT_SCORED_WINDOW_SECONDS"] = "86400"  # windows are closed by the simulated clock
    for key in [k for k in os.environ if k.startswith("APPLICATIONINSIGHTS") or k.startswith("LEDGER_")]:
        del os.environ[key]
    import azure.functions as func

    import function_app
    from serving import telemetry

    predict = next(f for f in function_app.app.get_functions() if f.get_function_name() == "predict")
    handler = predict.get_user_function()
    capture = _Capture()
    events_logger = logging.getLogger(telemetry.EVENTS_LOGGER_NAME)
    events_logger.addHandler(capture)
    events_logger.propagate = False
    rng = random.Random(seed)
    stamped: list[tuple[datetime, str, dict[str, str]]] = []
    try:
        for moment in _minutes():
            texts = minute_texts(moment, rng)
            for start in range(0, len(texts), 1000):
                body = json.dumps({"texts": texts[start : start + 1000]}).encode()
                request = func.HttpRequest(
                    method="POST",
                    url="http://localhost/api/predict",
                    headers={"content-type": "application/json"},
                    params={},
                    route_params={},
                    body=body,
                )
                response = handler(request)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"predict answered {response.status_code}: {response.get_body()[:200]!r}"
                    )
            telemetry.flush()  # the minute's window ends: the app emits its SentimentScored
            stamp = moment + timedelta(seconds=59)
            stamped += [(stamp, name, dims) for name, dims in capture.events]
            capture.events.clear()
    finally:
        events_logger.removeHandler(capture)
    return stamped


def _minutes() -> Iterator[datetime]:
    moment = START
    while moment < END:
        yield moment
        moment += timedelta(minutes=1)


# --- the rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What a scheduledQueryRules entry evaluates: query (parameters substituted), window, how often,
    how far back the query may read (the window, or overrideQueryTimeRange), fire on >= 1 row."""

    name: str
    query: str
    window: timedelta
    frequency: timedelta
    time_range: timedelta


def bicep_defaults() -> dict[str, str]:
    text = MAIN_BICEP.read_text(encoding="utf-8")
    return dict(re.findall(r"^param\s+(\w+)\s+\w+\s*=\s*'?([^'\n]+?)'?\s*$", text, flags=re.MULTILINE))


def duration(iso: str) -> timedelta:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", iso)
    if not match:
        raise ValueError(f"unsupported duration {iso!r}")
    return timedelta(days=int(match[1] or 0), hours=int(match[2] or 0), minutes=int(match[3] or 0))


BASELINE_LINE = "let baseline = dynamic([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);"
# The let lines infra/modules/alerts.bicep replaces, and what with (Bicep parameter names in ${}).
SUBSTITUTIONS = {
    "alert-topic-spike.kql": {
        "let k = 3.0;": "let k = ${topicSpikeSdTenths} / 10.0;",
        "let minNegatives = 15;": "let minNegatives = ${topicSpikeMinNegatives};",
        "let baselineHours = 47;": "let baselineHours = ${topicSpikeBaselineHours};",
    },
    "alert-score-drift.kql": {
        BASELINE_LINE: "let baseline = dynamic(${scoreBaselineLiteral});",
        "let maxPsi = 0.2;": "let maxPsi = ${scoreDriftMaxPsiHundredths} / 100.0;",
        "let minTexts = 500;": "let minTexts = ${scoreDriftMinTexts};",
    },
    "alert-input-drift.kql": {
        "let maxUnknownShare = 0.35;": "let maxUnknownShare = ${inputDriftMaxUnknownPercent} / 100.0;",
        "let maxEmptyShare = 0.2;": "let maxEmptyShare = ${inputDriftMaxEmptyPercent} / 100.0;",
        "let minTexts = 100;": "let minTexts = ${inputDriftMinTexts};",
    },
}
SAFETY_LINES = {
    "let safetyRule = false;": "let safetyRule = true;",
    "let minNegatives = 15;": "let minNegatives = ${safetySpikeMinNegatives};",
}


def deployed_query(file: str, values: dict[str, str], extra: dict[str, str] | None = None) -> str:
    """The query text as the alert rule receives it (the Bicep replacements applied)."""
    query = (QUERIES / file).read_text(encoding="utf-8")
    replacements = dict(SUBSTITUTIONS[file])
    if extra:
        replacements.update(extra)
    for line, template in replacements.items():
        if line not in query:
            raise ValueError(f"{file} lacks the line {line!r} that the Bicep replaces")
        filled = re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], template)
        query = query.replace(line, filled)
    return query


def alert_rules(baseline: list[int]) -> list[Rule]:
    """The drift and spike rules with infra/main.bicep's defaults (the baseline from the model)."""
    # alerts.bicep: scoreBaselineLiteral = string(scoreBaselineHistogram), compact JSON
    values = bicep_defaults() | {"scoreBaselineLiteral": json.dumps(baseline, separators=(",", ":"))}
    spike = dict(
        window=duration(values["topicSpikeWindow"]),
        frequency=duration(values["topicSpikeEvaluationFrequency"]),
        time_range=duration(values["topicSpikeQueryTimeRange"]),
    )
    return [
        Rule("topic-spike", deployed_query("alert-topic-spike.kql", values), **spike),
        Rule("safety-spike", deployed_query("alert-topic-spike.kql", values, SAFETY_LINES), **spike),
        Rule(
            "score-drift",
            deployed_query("alert-score-drift.kql", values),
            duration(values["scoreDriftWindow"]),
            duration(values["scoreDriftEvaluationFrequency"]),
            duration(values["scoreDriftWindow"]),
        ),
        Rule(
            "input-drift",
            deployed_query("alert-input-drift.kql", values),
            duration(values["inputDriftWindow"]),
            duration(values["inputDriftEvaluationFrequency"]),
            duration(values["inputDriftWindow"]),
        ),
    ]


def load_events(events: list[tuple[datetime, str, dict[str, str]]]):
    import duckdb_kql

    connection = duckdb_kql.connect()
    connection.sql("CREATE TABLE allEvents (timestamp TIMESTAMP, name VARCHAR, customDimensions JSON)")
    connection.executemany(
        "INSERT INTO allEvents VALUES (?, ?, ?)", [(t, n, json.dumps(d)) for t, n, d in events]
    )
    return connection


def evaluate(connection, rule: Rule, start: datetime, end: datetime) -> list[tuple[datetime, list]]:
    """(evaluation time, rows) of every evaluation from ``start`` to ``end`` at which the rule fires:
    the query sees the events of [time - time range, time) and ``now()`` is the evaluation time."""
    import duckdb_kql

    # query_now makes now() a bound parameter ($kqlnow), set to each evaluation time below.
    sql = duckdb_kql.to_sql(
        rule.query, schema={"customEvents": ["timestamp", "name", "customDimensions"]}, query_now=start
    )
    fired = []
    moment = start + rule.frequency
    while moment <= end:
        since = moment - rule.time_range
        connection.sql(
            "CREATE OR REPLACE VIEW customEvents AS SELECT * FROM allEvents WHERE "
            f"timestamp >= TIMESTAMP '{since.isoformat()}' AND timestamp < TIMESTAMP '{moment.isoformat()}'"
        )
        parameters = {**sql.parameters, "kqlnow": moment} if "$kqlnow" in sql else {}
        rows = connection.execute(sql, parameters or None).fetchall()
        if rows:
            fired.append((moment, rows))
        moment += rule.frequency
    return fired


def attribute(rule: Rule, firings: list[tuple[datetime, list]]) -> dict[str, bool]:
    """Episode -> whether the rule fired while the episode was inside its window (evaluations from the
    episode's start to its end + the rule's window); ``NORMAL`` -> fired at any other evaluation."""
    table = {episode.name: False for episode in EPISODES} | {NORMAL: False}
    for moment, _ in firings:
        owners = [e.name for e in EPISODES if e.start < moment <= e.end + rule.window]
        for owner in owners:
            table[owner] = True
        if not owners:
            table[NORMAL] = True
    return table


def run(model: Path | None = None, seed: int = 2026) -> dict:
    """Simulate, evaluate every rule over the week, and return the table with the firing details."""
    from serving.contract import read_metadata

    with tempfile.TemporaryDirectory() as directory:
        path = model or build_stand_in_model(Path(directory))
        metadata = read_metadata(path)
        baseline = metadata.get("validation_histogram") or [1] * 10
        events = simulate(path, seed)
    connection = load_events(events)
    results: dict = {
        "model": "stand-in" if model is None else str(model),
        "baseline": baseline,
        "events": len(events),
        "texts": sum(int(d["texts"]) for _, _, d in events),
        "episodes": {e.name: e.description for e in EPISODES},
        "rules": {},
    }
    for rule in alert_rules(baseline):
        firings = evaluate(connection, rule, WEEK_START, END)
        results["rules"][rule.name] = {
            "fired": attribute(rule, firings),
            "evaluations_fired": len(firings),
            "first": [str(m) for m, _ in firings[:3]],
            "sample_rows": [[str(value) for value in row] for row in firings[0][1][:3]] if firings else [],
        }
    return results


def markdown_table(results: dict) -> str:
    columns = [e.name for e in EPISODES] + [NORMAL]
    lines = ["| rule | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, rule in results["rules"].items():
        cells = ["fired" if rule["fired"][c] else "-" for c in columns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{results['events']} SentimentScored events ({results['texts']} texts) over {(END - START).days} "
        f"simulated days, model: {results['model']}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="serve this ONNX file instead of the stand-in")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--doc", type=Path, help="page whose marked table is rewritten")
    args = parser.parse_args(argv)
    results = run(args.model, args.seed)
    if args.doc:
        text = args.doc.read_text(encoding="utf-8")
        head, rest = text.split(DOC_START, 1)
        _, tail = rest.split(DOC_END, 1)
        args.doc.write_text(
            f"{head}{DOC_START}\n{markdown_table(results)}\n{DOC_END}{tail}", encoding="utf-8"
        )
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
