"""``behaviour``: CheckList-style behavioural tests (Ribeiro et al., 2020) of any P(negative) scorer.

Held-out accuracy says how often a model is right, not which linguistic capabilities it lacks: an
n-gram model can score well and still read "the flight was not terrible" as a complaint. The suites
here probe one capability each, with texts generated in this repository from small airline-domain
lexicons, so they need no network, no data download, and give the same cases for the same seed:

- MFT (minimum functionality test): every generated text has an expected label; a failure is a text
  labelled otherwise;
- INV (invariance test): each case is an (original, perturbed) pair whose perturbation must not change
  the meaning (names, URLs, @mentions, casing, an airline hashtag); a failure is a pair whose labels
  differ.

The runner takes any callable raw texts -> P(negative) and the threshold that turns a probability into a
label (negative from the threshold on, as serving does), so the served ONNX model, a challenger or a
cascade are measured alike. Standard library and numpy only; the serving runtime is imported when a
model file is scored.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from training.config import SEED

NEGATIVE, POSITIVE = "negative", "positive"
LABELS = (NEGATIVE, POSITIVE)
# Enough cases for a failure rate to mean something, few enough to score in well under a second.
MAX_CASES = 200
EXAMPLES = 3
DEFAULT_JSON = Path("reports/behaviour/behaviour.json")
DEFAULT_MARKDOWN = Path("reports/behaviour/behaviour.md")

Scorer = Callable[[list[str]], np.ndarray]

# ------------------------------------------------------------------------------------------- lexicons
# Singular nouns, so "the {thing} was ..." is grammatical for each; people take more adjectives than
# things ("the crew was rude", not "the legroom was rude"), so they are listed apart.
THINGS = (
    "flight", "check-in", "boarding", "seat", "legroom", "food", "meal", "lounge", "service", "wifi",
    "entertainment system", "app", "website", "refund process", "baggage claim", "landing", "takeoff",
    "upgrade", "connection", "layover", "booking", "rebooking",
)  # fmt: skip
PEOPLE = (
    "crew", "cabin crew", "pilot", "gate agent", "staff", "flight attendant", "customer service",
    "call center", "check-in agent", "ground staff",
)  # fmt: skip
# Adjectives that fit any thing or person.
NEGATIVE_ADJECTIVES = (
    "terrible", "awful", "horrible", "bad", "disappointing", "miserable", "frustrating", "useless", "poor",
    "pathetic", "annoying", "stressful", "lousy", "dreadful", "mediocre", "slow", "chaotic",
    "unacceptable", "disgraceful", "appalling",
)  # fmt: skip
POSITIVE_ADJECTIVES = (
    "great", "amazing", "excellent", "wonderful", "fantastic", "awesome", "lovely", "pleasant", "perfect",
    "brilliant", "good", "nice", "outstanding", "superb", "impressive", "fabulous", "terrific", "stellar",
    "smooth", "quick",
)  # fmt: skip
# Adjectives for people only.
NEGATIVE_PERSON_ADJECTIVES = (
    "rude", "unhelpful", "unprofessional", "unfriendly", "dismissive", "careless", "incompetent",
    "hostile", "impatient", "condescending",
)  # fmt: skip
POSITIVE_PERSON_ADJECTIVES = (
    "friendly", "helpful", "courteous", "kind", "attentive", "professional", "polite", "patient",
    "caring", "welcoming",
)  # fmt: skip
INTENSIFIERS = (
    "really", "very", "so", "extremely", "incredibly", "super", "truly", "absolutely", "totally",
    "remarkably", "exceptionally", "unbelievably", "insanely", "genuinely", "seriously", "ridiculously",
)  # fmt: skip
# Things that went wrong, written to stand alone after "thanks, but" or "great job,".
COMPLAINTS = (
    "my bag is still missing", "the flight was delayed 4 hours", "you lost my luggage",
    "my refund never arrived", "the seat was broken", "we sat on the tarmac for 3 hours",
    "I missed my connection", "nobody at check-in could help", "my flight got cancelled",
    "the crew ignored us", "the wifi never worked", "I was charged twice for my bag",
    "they gave away my seat", "my suitcase arrived damaged", "the plane was filthy",
    "the gate changed three times without notice", "I waited an hour on hold",
    "the app kept crashing at check-in", "my upgrade vanished", "the food was inedible",
    "we were stuck at the gate for two hours", "no one told us about the delay",
    "my stroller came back broken", "boarding was total chaos", "the toilets were out of order",
    "the flight was overbooked and I got bumped", "still no refund after six weeks",
    "the crew was rude to my mother", "my bag went to the wrong city",
    "the entertainment screen was dead the whole flight",
)  # fmt: skip
# Setbacks that a good recovery can outweigh ("... but the crew made up for it").
SETBACKS = (
    "the flight was delayed 2 hours", "my bag got lost", "our flight was cancelled",
    "we missed our connection", "my seat was broken", "check-in was slow", "boarding was a mess",
    "the wifi was down", "we sat at the gate for an hour", "my meal was missing",
    "the plane was late", "the gate changed last minute", "my suitcase got delayed",
    "we were stuck on the tarmac", "the lounge was full", "my booking got messed up",
    "the flight was overbooked", "the app crashed at check-in", "my refund took a while",
    "the screen at my seat did not work",
)  # fmt: skip
RECOVERIES = (
    "the crew made up for it, thank you", "the gate agent fixed everything, thanks",
    "customer service sorted it out fast, thank you", "the staff made it right, thanks so much",
    "you made up for it with an upgrade, thank you", "the team handled it brilliantly, thanks",
    "the crew was wonderful about it, thank you", "the agent rebooked us right away, much appreciated",
)  # fmt: skip
PRAISES = (
    "thanks", "thanks a lot", "great job", "well done", "love you guys", "nice work", "good job",
    "thank you so much", "appreciate it", "cheers", "amazing service", "awesome",
)  # fmt: skip
AIRLINES = (
    "Air Paradis", "United", "Delta", "American", "Southwest", "JetBlue", "Virgin America", "US Airways",
    "Alaska Airlines", "British Airways", "Air France", "Lufthansa",
)  # fmt: skip
HANDLES = (
    "@AirParadis", "@united", "@Delta", "@AmericanAir", "@SouthwestAir", "@JetBlue", "@VirginAmerica",
    "@USAirways", "@AlaskaAir", "@British_Airways", "@airfrance", "@lufthansa",
)  # fmt: skip
HASHTAGS = (
    "#AirParadis", "#united", "#Delta", "#AmericanAirlines", "#Southwest", "#JetBlue", "#VirginAmerica",
    "#USAirways", "#AlaskaAirlines", "#BritishAirways", "#AirFrance", "#Lufthansa",
)  # fmt: skip
CITIES = (
    "Paris", "London", "New York", "Denver", "Chicago", "Boston", "Miami", "Dallas", "Seattle",
    "Los Angeles", "Nice", "Lyon", "Montreal", "Madrid", "Rome", "Atlanta",
)  # fmt: skip
NAMES = (
    "Anna", "John", "Maria", "David", "Fatima", "Wei", "Priya", "Carlos", "Aisha", "Tom", "Sophie",
    "Ahmed", "Lucas", "Emma", "Kenji", "Olga", "Mohammed", "Chloe", "Diego", "Grace", "Ibrahim", "Hannah",
    "Marco", "Yuki", "Kwame", "Sara", "Pierre", "Nadia", "Ravi", "Julie",
)  # fmt: skip
URLS = (
    "http://t.co/abc123", "https://t.co/Xy7Qz9", "https://airparadis.example/booking",
    "www.united.com/baggage", "http://bit.ly/2fL0ht", "https://instagram.com/p/B1xQ",
    "http://t.co/k9LmN2", "https://www.delta.com/status", "http://goo.gl/qw3Er",
    "https://youtu.be/dQw4w9", "http://tinyurl.com/flt82", "https://twitpic.com/4xz1",
)  # fmt: skip
NEGATIVE_EMOJI = (
    "😡", "😤", "👎", "😢", "💔", "😠", "😞", "😭", "🤬", "😒", "😩", "🙄", "☹️", "😣", "😖", "😫",
)  # fmt: skip
POSITIVE_EMOJI = (
    "😍", "🥰", "👍", "🎉", "❤️", "😊", "🙏", "✨", "😀", "😁", "👏", "🙌", "💯", "😃", "🤩", "🥳",
)  # fmt: skip
_NAME = re.compile(r"\b(?:" + "|".join(NAMES) + r")\b")

# ------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True, slots=True)
class MftCase:
    """A text and the label any reasonable model gives it."""

    text: str
    expected: str


@dataclass(frozen=True, slots=True)
class InvCase:
    """A text and a meaning-preserving perturbation of it: both must get the same label."""

    original: str
    perturbed: str


@dataclass(frozen=True, slots=True)
class Suite:
    """One capability probed one way: ``type`` MFT (cases are ``MftCase``) or INV (``InvCase``)."""

    name: str
    capability: str
    type: Literal["MFT", "INV"]
    description: str
    cases: tuple[MftCase, ...] | tuple[InvCase, ...]

    def texts(self) -> list[str]:
        """Every text the suite needs scored, in case order."""
        if self.type == "MFT":
            return [case.text for case in self.cases]  # type: ignore[union-attr]
        return [text for case in self.cases for text in (case.original, case.perturbed)]  # type: ignore[union-attr]


def _expand(templates: Iterable[str], **slots: Sequence[str]) -> list[str]:
    """Every filling of every template with the slots it names, without duplicates, in a fixed order."""
    texts: dict[str, None] = {}
    for template in templates:
        names = [name for name in slots if "{" + name + "}" in template]
        for values in itertools.product(*(slots[name] for name in names)):
            texts[template.format(**dict(zip(names, values, strict=True)))] = None
    return list(texts)


def _described(templates: Iterable[str], polarity: str, **slots: Sequence[str]) -> list[str]:
    """``_expand`` for templates with a ``{thing}`` and an ``{adjective}`` of ``polarity``: things take
    the general adjectives, people also the ones for people."""
    general, personal = (
        (POSITIVE_ADJECTIVES, POSITIVE_PERSON_ADJECTIVES)
        if polarity == POSITIVE
        else (NEGATIVE_ADJECTIVES, NEGATIVE_PERSON_ADJECTIVES)
    )
    templates = list(templates)
    texts = _expand(templates, thing=THINGS, adjective=general, **slots)
    texts += _expand(templates, thing=PEOPLE, adjective=general + personal, **slots)
    return list(dict.fromkeys(texts))


def _sample(rng: random.Random, items: Sequence[Any], limit: int) -> list[Any]:
    """At most ``limit`` items, drawn without replacement, in a seed-determined order."""
    return rng.sample(list(items), min(limit, len(items)))


def _mft(rng: random.Random, texts: Sequence[str], expected: str, limit: int) -> tuple[MftCase, ...]:
    return tuple(MftCase(text, expected) for text in _sample(rng, texts, limit))


def _inv(
    rng: random.Random,
    originals: Sequence[str],
    perturb: Callable[[random.Random, str], str],
    limit: int,
) -> tuple[InvCase, ...]:
    """One perturbation per sampled original; a perturbation that changes nothing is left out."""
    cases = []
    for original in _sample(rng, originals, limit):
        perturbed = perturb(rng, original)
        if perturbed != original:
            cases.append(InvCase(original, perturbed))
    return tuple(cases)


def _base_sentences() -> list[str]:
    """Plain positive and negative airline tweets that the INV perturbations start from."""
    positive = _described(["the {thing} was {adjective}", "thanks, the {thing} was so {adjective}"], POSITIVE)
    negative = _described(["the {thing} was {adjective}", "worst {thing} ever, so {adjective}"], NEGATIVE)
    complaints = _expand(["{complaint}", "{complaint} again"], complaint=COMPLAINTS)
    return positive + negative + complaints


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _name_perturbation(rng: random.Random, text: str) -> str:
    """Replace the (first) person's name with another one."""
    match = _NAME.search(text)
    if match is None:
        return text
    other = rng.choice([name for name in NAMES if name != match.group()])
    return text[: match.start()] + other + text[match.end() :]


def _url_perturbation(rng: random.Random, text: str) -> str:
    """Add a URL (end or start), or swap the one already at the end for another."""
    for url in URLS:
        if text.endswith(" " + url):
            return text[: -len(url)] + rng.choice([u for u in URLS if u != url])
    url = rng.choice(URLS)
    return f"{url} {text}" if rng.random() < 0.25 else f"{text} {url}"


def _mention_perturbation(rng: random.Random, text: str) -> str:
    """Add an airline handle (start or end), or swap the leading one for another."""
    for handle in HANDLES:
        if text.startswith(handle + " "):
            return rng.choice([h for h in HANDLES if h != handle]) + text[len(handle) :]
    handle = rng.choice(HANDLES)
    return f"{handle} {text}" if rng.random() < 0.6 else f"{text} {handle}"


def _casing_perturbation(rng: random.Random, text: str) -> str:
    return rng.choice([str.upper, str.lower, str.title])(text)


def _hashtag_perturbation(rng: random.Random, text: str) -> str:
    return f"{text} {rng.choice(HASHTAGS)}"


def generate_suites(seed: int = SEED, max_cases: int = MAX_CASES) -> list[Suite]:
    """Every suite, each with at most ``max_cases`` cases; the same seed gives the same cases.

    Each suite draws from its own generator, seeded by the seed and its name, so adding a suite does not
    change the cases of the others."""

    def rng(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    suites: list[Suite] = []

    def mft(name: str, capability: str, description: str, texts: Sequence[str], expected: str) -> None:
        cases = _mft(rng(name), texts, expected, max_cases)
        suites.append(Suite(name, capability, "MFT", description, cases))

    def inv(
        name: str,
        capability: str,
        description: str,
        originals: Sequence[str],
        perturb: Callable[[random.Random, str], str],
    ) -> None:
        cases = _inv(rng(name), originals, perturb, max_cases)
        suites.append(Suite(name, capability, "INV", description, cases))

    mft(
        "negated_negative",
        "negation",
        '"the {thing} was not {negative}" is positive',
        _described(
            [
                "the {thing} was not {adjective}",
                "the {thing} wasn't {adjective}",
                "the {thing} was not {adjective} at all",
                "the {thing} wasn't {adjective} at all",
                "the {thing} is not {adjective}",
                "the {thing} isn't {adjective}",
                "honestly the {thing} was not {adjective}",
                "the {thing} was not {adjective} this time",
            ],
            NEGATIVE,
        ),
        POSITIVE,
    )
    mft(
        "negated_positive",
        "negation",
        '"the {thing} wasn\'t {positive}" is negative',
        _described(
            [
                "the {thing} was not {adjective}",
                "the {thing} wasn't {adjective}",
                "the {thing} wasn't {adjective} at all",
                "the {thing} is not {adjective}",
                "the {thing} isn't {adjective}",
                "the {thing} was not {adjective} this time",
                "sadly the {thing} was not {adjective}",
            ],
            POSITIVE,
        ),
        NEGATIVE,
    )
    mft(
        "no_problems",
        "negation",
        '"not bad, no worries" style: a negated problem is positive',
        _expand(
            [
                "the {thing}? not bad, no worries",
                "no complaints about the {thing}",
                "no problems with the {thing}, thanks",
                "not a single problem with the {thing}",
                "no issues at all with the {thing}",
                "can't complain about the {thing}",
                "nothing to complain about, the {thing} was fine",
                "no worries, the {thing} was sorted quickly",
                "not bad at all, {airline}",
                "no delays, no problems, thanks {airline}",
                "no stress, no hassle, {airline} never lets me down",
            ],
            thing=THINGS + PEOPLE,
            airline=AIRLINES,
        ),
        POSITIVE,
    )
    mft(
        "never_again",
        "negation",
        '"never again" is negative, even in an otherwise neutral tweet',
        _expand(
            [
                "flew {airline} to {city} today. never again.",
                "never again with {airline}, {city} trip done",
                "{airline}, never again. just landed in {city}",
                "never flying {airline} again after {city}",
                "never booking with {airline} again, {city} was the last time",
                "took the {city} flight with {airline}. never again",
                "never again will I fly {airline} to {city}",
            ],
            airline=AIRLINES,
            city=CITIES,
        ),
        NEGATIVE,
    )
    mft(
        "praise_then_complaint",
        "contrast",
        '"thanks, but {complaint}" / "great job, {complaint}" is negative',
        _expand(
            ["{praise}, but {complaint}", "{praise}, {complaint}", "{praise} {airline}... {complaint}"],
            praise=PRAISES,
            complaint=COMPLAINTS,
            airline=AIRLINES,
        ),
        NEGATIVE,
    )
    mft(
        "complaint_then_recovery",
        "contrast",
        '"{complaint} but the crew made up for it, thank you" is positive',
        _expand(
            ["{setback} but {recovery}", "{setback}, but {recovery}"], setback=SETBACKS, recovery=RECOVERIES
        ),
        POSITIVE,
    )
    mft(
        "intensified_positive",
        "intensifiers",
        '"the {thing} was {intensifier} {positive}" stays positive',
        _described(
            ["the {thing} was {intensifier} {adjective}", "{intensifier} {adjective} {thing} today"],
            POSITIVE,
            intensifier=INTENSIFIERS,
        ),
        POSITIVE,
    )
    mft(
        "intensified_negative",
        "intensifiers",
        '"the {thing} was {intensifier} {negative}" stays negative',
        _described(
            ["the {thing} was {intensifier} {adjective}", "{intensifier} {adjective} {thing} today"],
            NEGATIVE,
            intensifier=INTENSIFIERS,
        ),
        NEGATIVE,
    )
    mft(
        "emoji_negative",
        "emoji",
        "a tweet of negative emoji only is negative",
        _emoji_texts(NEGATIVE_EMOJI),
        NEGATIVE,
    )
    mft(
        "emoji_positive",
        "emoji",
        "a tweet of positive emoji only is positive",
        _emoji_texts(POSITIVE_EMOJI),
        POSITIVE,
    )

    named = _expand(
        [
            "{name} at the gate was {positive}",
            "{name} at check-in was {negative}",
            "thanks {name} for the {positive} service on the {city} flight",
            "{name} the flight attendant was so {negative} to us",
            "shout out to {name}, {positive} crew on the {city} flight",
            "asked {name} for help at the desk: {complaint}",
        ],
        name=NAMES,
        positive=POSITIVE_PERSON_ADJECTIVES,
        negative=NEGATIVE_PERSON_ADJECTIVES,
        city=CITIES[:6],
        complaint=COMPLAINTS[:10],
    )
    inv("names", "robustness: names", "replacing a person's name keeps the label", named, _name_perturbation)
    bases = _base_sentences()
    inv(
        "urls",
        "robustness: URLs",
        "adding or changing a URL keeps the label",
        bases + [f"{text} {url}" for text, url in zip(bases[::7], itertools.cycle(URLS), strict=False)],
        _url_perturbation,
    )
    inv(
        "mentions",
        "robustness: @mentions",
        "adding or changing an airline @mention keeps the label",
        bases
        + [f"{handle} {text}" for text, handle in zip(bases[::7], itertools.cycle(HANDLES), strict=False)],
        _mention_perturbation,
    )
    inv(
        "casing",
        "robustness: casing",
        "upper, lower or title case keeps the label",
        [_capitalized(text) for text in bases],
        _casing_perturbation,
    )
    inv(
        "airline_hashtag",
        "robustness: hashtags",
        "a trailing airline hashtag keeps the label",
        bases,
        _hashtag_perturbation,
    )
    return suites


def _emoji_texts(emoji: Sequence[str]) -> list[str]:
    """Runs of one to three emoji, written together or spaced."""
    texts: dict[str, None] = {}
    for size in (1, 2, 3):
        for run in itertools.product(emoji, repeat=size):
            texts["".join(run)] = None
            texts[" ".join(run)] = None
    return list(texts)


# ------------------------------------------------------------------------------------------- runner


def _labels(probabilities: np.ndarray, threshold: float) -> list[str]:
    """Negative from the threshold on (inclusive), as serving labels."""
    return [NEGATIVE if p >= threshold else POSITIVE for p in probabilities.tolist()]


def _checked_scores(score: Scorer, texts: list[str]) -> np.ndarray:
    """The scorer's answer for ``texts``, refused when it is not one probability per text: a scorer that
    drops or reorders texts would otherwise produce plausible, wrong failure rates."""
    probabilities = np.asarray(score(texts), dtype=np.float64)
    if probabilities.shape != (len(texts),):
        raise ValueError(f"the scorer returned shape {probabilities.shape} for {len(texts)} texts")
    if not np.all(np.isfinite(probabilities)) or np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError("the scorer returned values outside [0, 1]")
    return probabilities


def run_suites(
    score: Scorer,
    threshold: float,
    suites: Sequence[Suite] | None = None,
    seed: int = SEED,
) -> dict[str, Any]:
    """Score every suite's texts (one call, each distinct text once) and count failures per suite.

    ``score``: raw texts -> P(negative), any model or cascade; ``suites``: the generated ones (with
    ``seed``, which the result records) by default. Returns ``{"threshold", "seed", "suites": {name:
    result}}``, each result with name, capability, type, description, n, failures, failure_rate and up
    to ``EXAMPLES`` example failures, the most confident first (the clearest to read)."""
    if suites is None:
        suites = generate_suites(seed)
    distinct = list(dict.fromkeys(text for suite in suites for text in suite.texts()))
    probabilities = _checked_scores(score, distinct) if distinct else np.empty(0)
    probability = dict(zip(distinct, probabilities.tolist(), strict=True))
    label = dict(zip(distinct, _labels(probabilities, threshold), strict=True))

    results: dict[str, Any] = {}
    for suite in suites:
        failures: list[tuple[float, dict[str, Any]]] = []
        for case in suite.cases:
            if isinstance(case, MftCase):
                if label[case.text] != case.expected:
                    margin = abs(probability[case.text] - threshold)
                    failures.append(
                        (
                            margin,
                            {
                                "text": case.text,
                                "expected": case.expected,
                                "predicted": label[case.text],
                                "negative_probability": round(probability[case.text], 4),
                            },
                        )
                    )
            elif label[case.original] != label[case.perturbed]:
                margin = abs(probability[case.original] - probability[case.perturbed])
                failures.append(
                    (
                        margin,
                        {
                            "original": case.original,
                            "perturbed": case.perturbed,
                            "original_label": label[case.original],
                            "perturbed_label": label[case.perturbed],
                            "original_probability": round(probability[case.original], 4),
                            "perturbed_probability": round(probability[case.perturbed], 4),
                        },
                    )
                )
        n = len(suite.cases)
        worst = sorted(range(len(failures)), key=lambda i: -failures[i][0])[:EXAMPLES]
        results[suite.name] = {
            "name": suite.name,
            "capability": suite.capability,
            "type": suite.type,
            "description": suite.description,
            "n": n,
            "failures": len(failures),
            "failure_rate": len(failures) / n if n else 0.0,
            "examples": [failures[i][1] for i in worst],
        }
    return {"threshold": threshold, "seed": seed, "suites": results}


def score_with_model(path: str | Path) -> tuple[Scorer, float]:
    """A scorer for the ONNX model at ``path`` through the serving runtime (its normalizer, its graph),
    and the model's own threshold: texts are scored exactly as the API would score them."""
    from serving.runtime import SentimentModel

    model = SentimentModel.load(path)
    return model_scorer(model), model.threshold


def model_scorer(model: Any) -> Scorer:
    """Raw texts -> P(negative) of a loaded ``serving.runtime.SentimentModel``."""

    # A cascade re-reads at most its quota of texts per request: score in requests that small, so every
    # text is scored as it would be if sent alone.
    size = model.cascade.quota if getattr(model, "cascade", None) is not None else 10_000

    def score(texts: list[str]) -> np.ndarray:
        texts = list(texts)
        predictions = [
            p
            for begin in range(0, len(texts), size)
            for p in model.predict(texts[begin : begin + size], match_topics=False)
        ]
        return np.array([p.negative_probability for p in predictions], dtype=np.float64)

    return score


# ------------------------------------------------------------------------------------------- reports


def _cell(text: str) -> str:
    """Table-safe text: pipes escaped, line breaks flattened."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _example(result: dict[str, Any]) -> str:
    if not result["examples"]:
        return ""
    example = result["examples"][0]
    if "text" in example:
        return f"`{_cell(example['text'])}` → {example['predicted']} ({example['negative_probability']:.2f})"
    return (
        f"`{_cell(example['original'])}` ({example['original_label']}) → "
        f"`{_cell(example['perturbed'])}` ({example['perturbed_label']})"
    )


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown section for the model card: one row per suite."""
    model = report.get("model", {})
    lines = ["## Behavioural tests (CheckList)", ""]
    about = f"Threshold {report['threshold']:.4g}, seed {report['seed']}"
    if model:
        about = f"Model `{model.get('version', '?')}`, " + about[0].lower() + about[1:]
    lines += [
        about + ". MFT: share of generated texts given the wrong label; INV: share of pairs whose label "
        "changes under a perturbation that keeps the meaning. Lower is better.",
        "",
        "| suite | capability | type | n | failure rate | example failure |",
        "|---|---|---|---:|---:|---|",
    ]
    for result in report["suites"].values():
        lines.append(
            f"| {result['name']} | {_cell(result['capability'])} | {result['type']} | {result['n']} | "
            f"{result['failure_rate']:.1%} | {_example(result)} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], json_out: Path | None, markdown_out: Path | None) -> None:
    """Write the report as JSON and/or Markdown (folders created)."""
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if markdown_out is not None:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(render_markdown(report), encoding="utf-8")


def run_behaviour_command(
    model_path: str | Path,
    json_out: Path | None = DEFAULT_JSON,
    markdown_out: Path | None = DEFAULT_MARKDOWN,
    seed: int = SEED,
    encoder_path: str | Path | None = None,
) -> dict[str, Any]:
    """The ``behaviour`` command: run every suite on the model file (with its cascade when
    ``encoder_path`` names one), write the reports, return them."""
    from serving.runtime import SentimentModel

    model = SentimentModel.load(model_path)
    if encoder_path is not None:
        model.attach_cascade(Path(encoder_path))
    report = {
        "model": {"path": Path(model_path).name, "version": model.version},
        **run_suites(model_scorer(model), model.threshold, seed=seed),
    }
    write_reports(report, json_out, markdown_out)
    return report
