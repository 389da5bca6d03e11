"""From tweet files to clean, leak-free train / validation / test splits plus named external test sets.

Cleaning policy (every count lands in ``Dataset.report``):

1. every text is normalized with the one normalizer serving uses (``serving.normalizer.normalize``);
2. texts empty after normalization are dropped from the training pool (nothing left to learn from);
3. every text that is in any external test set (after normalization) is removed from the pool and from
   the train-only files, so no evaluation ever scores a tweet the model was trained on;
4. duplicates after normalization are collapsed to one row, across all pool and train-only files.
   When the copies disagree on the label, the majority label wins (the kept row is the first copy with
   that label); on a tie every copy is dropped, because no label is right for that text;
5. the pool is split train / validation / test, stratified on the label, with a fixed seed; train-only
   rows (texts that are not in the pool) are added to train only.

Feedback (a ``label,text`` file pulled from the ledger, ``training.feedback``) is split by text into a
held-out part, kept whole as the external test set ``feedback_holdout`` (so step 3 keeps it out of every
split), and a training part added to train only with a sample weight; its label overrides any pool or
train-only copy of the same text (a user's correction is the newest judgement of that tweet).

External test sets are kept whole (duplicates and texts empty after normalization included) so their
figures compare with the published ones; their counts are reported. ``check_no_leakage`` then proves
that no validation, internal-test or external-test text is in train.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.model_selection import train_test_split

from serving.normalizer import NORMALIZER_VERSION, normalize
from training.config import SEED
from training.data import UNLABELLED, read_tweets
from training.feedback import HOLDOUT_SET, HOLDOUT_SHARE, is_held_out

_PROGRESS_CHUNK = 20_000


class LeakageError(ValueError):
    """A text that the model is evaluated on is also in its training split."""


@dataclass
class Split:
    name: str
    texts: list[str]  # normalized (serving.normalizer.normalize)
    labels: np.ndarray  # int8 0/1
    raw_texts: list[str]
    weights: np.ndarray | None = None  # sample weight per row (None: every row weighs 1)

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        """Rows per class: what reports print."""
        negative = int((self.labels == 0).sum())
        return {"rows": len(self.texts), "negative": negative, "positive": len(self.texts) - negative}


@dataclass
class Dataset:
    train: Split
    validation: Split
    test: Split
    external: dict[str, Split]  # "sentiment140_manual", "semeval2017_test", "sts_gold", "hcr_test"
    report: dict  # per-file counts and per-split sizes, see build_dataset
    fingerprint: str  # sha256 of the recipe + normalized train texts and labels


@dataclass(frozen=True)
class LoadedFile:
    """One tweet file read and normalized: the unit the dataset (and the EDA) is built from."""

    name: str
    path: Path
    raw_texts: list[str]
    texts: list[str]
    labels: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- loading


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


def _normalize_all(texts: list[str], progress: Progress | None, description: str) -> list[str]:
    """Normalize in chunks so a progress bar can follow a 1.6M-row file."""
    if progress is None:
        return [normalize(text) for text in texts]
    task = progress.add_task(description, total=len(texts))
    out: list[str] = []
    for start in range(0, len(texts), _PROGRESS_CHUNK):
        chunk = texts[start : start + _PROGRESS_CHUNK]
        out.extend(normalize(text) for text in chunk)
        progress.advance(task, len(chunk))
    return out


def load_file(
    path: Path | str, name: str | None = None, *, labelled: bool = True, progress: Progress | None = None
) -> LoadedFile:
    """Read and normalize one file; ``labelled`` refuses rows without a label (training and evaluation)."""
    path = Path(path)
    tweets = read_tweets(path)
    if labelled and (tweets.labels == UNLABELLED).any():
        missing = int((tweets.labels == UNLABELLED).sum())
        raise ValueError(f"{path}: {missing} tweets have no label; training and evaluation need labels")
    texts = _normalize_all(tweets.texts, progress, f"normalizing {name or path.name}")
    return LoadedFile(
        name=name or path.name,
        path=path,
        raw_texts=tweets.texts,
        texts=texts,
        labels=tweets.labels,
        dropped=dict(tweets.dropped),
    )


def load_split(path: Path | str, name: str | None = None) -> Split:
    """A whole labelled file as a normalized Split (for evaluating a model on any test file)."""
    loaded = load_file(path, name or Path(path).name.split(".")[0])
    return Split(loaded.name, loaded.texts, loaded.labels, loaded.raw_texts)


def file_names(paths: Sequence[Path]) -> list[str]:
    """Report names: paths relative to their common folder (``sentiment140/training.sample20k.csv``)."""
    if not paths:
        return []
    resolved = [Path(p).resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return [p.relative_to(root).as_posix() for p in resolved]


def load_files(
    train_files: Sequence[Path],
    external_tests: Mapping[str, Path],
    train_only_files: Sequence[Path] = (),
    *,
    progress: bool = True,
) -> tuple[list[LoadedFile], dict[str, LoadedFile], list[LoadedFile]]:
    """Read and normalize every file of a recipe (pool, external tests, train-only)."""
    pool_paths, only_paths = [Path(p) for p in train_files], [Path(p) for p in train_only_files]
    names = file_names([*pool_paths, *only_paths, *map(Path, external_tests.values())])
    pool_names = names[: len(pool_paths)]
    only_names = names[len(pool_paths) : len(pool_paths) + len(only_paths)]
    external_names = names[len(pool_paths) + len(only_paths) :]
    with _progress(progress) as bar:
        pool = [load_file(p, n, progress=bar) for p, n in zip(pool_paths, pool_names, strict=True)]
        only = [load_file(p, n, progress=bar) for p, n in zip(only_paths, only_names, strict=True)]
        external = {
            name: load_file(path, file_name, progress=bar)
            for (name, path), file_name in zip(external_tests.items(), external_names, strict=True)
        }
    return pool, external, only


# ------------------------------------------------------------------------------------------- building


def build_dataset(
    train_files: Sequence[Path],
    external_tests: Mapping[str, Path],
    *,
    train_only_files: Sequence[Path] = (),
    seed: int = SEED,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    progress: bool = True,
    feedback_file: Path | None = None,
    feedback_weight: float = 1.0,
    feedback_holdout: float | None = None,
) -> Dataset:
    """Read, normalize, clean, deduplicate and split (see the module docstring for the policy)."""
    pool, external, only = load_files(train_files, external_tests, train_only_files, progress=progress)
    feedback = None
    if feedback_file is not None:
        share = HOLDOUT_SHARE if feedback_holdout is None else feedback_holdout
        feedback, held_out = split_feedback(load_file(feedback_file), seed=seed, share=share)
        if held_out.texts:
            external = {**external, HOLDOUT_SET: held_out}
    return assemble_dataset(
        pool,
        external,
        only,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        feedback=feedback,
        feedback_weight=feedback_weight,
    )


def _file_counts(loaded: LoadedFile, role: str) -> dict:
    negative = int((loaded.labels == 0).sum())
    non_empty = [text for text in loaded.texts if text]
    return {
        "role": role,
        "path": str(loaded.path),
        "read": len(loaded.texts),
        "negative": negative,
        "positive": len(loaded.texts) - negative,
        "dropped": dict(loaded.dropped),
        "empty_after_normalization": len(loaded.texts) - len(non_empty),
        "duplicates_within": len(non_empty) - len(set(non_empty)),
    }


def assemble_dataset(
    pool: Sequence[LoadedFile],
    external: Mapping[str, LoadedFile],
    train_only: Sequence[LoadedFile] = (),
    *,
    seed: int = SEED,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    feedback: LoadedFile | None = None,
    feedback_weight: float = 1.0,
) -> Dataset:
    """Clean, deduplicate and split already loaded files (``build_dataset`` without the reading);
    ``feedback`` rows join train only, weighted ``feedback_weight``, and override same-text rows."""
    if not pool:
        raise ValueError("no training files given")
    if not 0 < feedback_weight <= 1_000:
        raise ValueError(f"the feedback weight must be in (0, 1000], got {feedback_weight}")
    for fraction in (validation_fraction, test_fraction):
        if not 0 <= fraction < 1:
            raise ValueError(f"split fractions must be in [0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must leave rows for training")

    files_report: dict[str, dict] = {}
    external_texts = {name: set(loaded.texts) for name, loaded in external.items()}
    any_external = set().union(*external_texts.values())
    for name, loaded in external.items():
        files_report[loaded.name] = _file_counts(loaded, f"external test: {name}")

    # Steps 2-3 per file: drop empty texts and external-test texts, remembering file order.
    candidates: list[tuple[str, str, int, int]] = []  # (normalized, raw, label, source index)
    sources = [*pool, *train_only, *([feedback] if feedback is not None else [])]
    feedback_index = len(pool) + len(train_only) if feedback is not None else -1
    feedback_texts = set(feedback.texts) if feedback is not None else set()
    for index, loaded in enumerate(sources):
        role = "train / validation / test pool" if index < len(pool) else "train only"
        if index == feedback_index:
            role = f"feedback (train only, weight {feedback_weight:g})"
        counts = _file_counts(loaded, role)
        overlap = dict.fromkeys(external_texts, 0)
        removed = replaced = 0
        for text, raw, label in zip(loaded.texts, loaded.raw_texts, loaded.labels.tolist(), strict=True):
            if not text:
                continue
            if index != feedback_index and text in feedback_texts:
                replaced += 1
                continue
            if text in any_external:
                removed += 1
                for name, texts in external_texts.items():
                    overlap[name] += text in texts
                continue
            candidates.append((text, raw, label, index))
        counts["removed_external_test_overlap"] = removed
        counts["overlap_by_test_set"] = overlap
        if feedback is not None:
            counts["replaced_by_feedback"] = replaced
        counts.update(duplicates=0, conflicting_label_dropped=0, kept=0)
        files_report[loaded.name] = counts

    # Step 4: collapse duplicates; majority label, ties dropped.
    kept, conflicts = _deduplicate(candidates)
    kept_by_source = Counter(row[3] for row in kept)
    for index, loaded in enumerate(sources):
        counts = files_report[loaded.name]
        counts["duplicates"] = conflicts["duplicates_by_source"][index]
        counts["conflicting_label_dropped"] = conflicts["tie_dropped_by_source"][index]
        counts["kept"] = kept_by_source[index]

    # Step 5: split the pool; train-only rows join train.
    pool_rows = [row for row in kept if row[3] < len(pool)]
    only_rows = [row for row in kept if row[3] >= len(pool)]
    train_rows, validation_rows, test_rows = _stratified_split(
        pool_rows, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
    )
    weight_of = {feedback_index: float(feedback_weight)} if feedback is not None else None
    train = _split("train", train_rows + only_rows, weight_of)
    validation = _split("validation", validation_rows)
    test = _split("test", test_rows)
    external_splits = {name: Split(name, lf.texts, lf.labels, lf.raw_texts) for name, lf in external.items()}
    for name in external_splits:
        files_report[external[name].name]["role"] = f"external test: {name}"

    check_no_leakage(train, {"validation": validation, "test": test, **external_splits})
    check_no_leakage(validation, {"test": test, **external_splits})
    check_no_leakage(test, external_splits)

    order = [lf.name for lf in (*pool, *train_only, *external.values())]
    files_report = {name: files_report[name] for name in order}
    recipe = {
        "normalizer_version": NORMALIZER_VERSION,
        "train_files": [lf.name for lf in pool],
        "train_only_files": [lf.name for lf in train_only],
        "external_tests": {name: lf.name for name, lf in external.items()},
        "seed": seed,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
    }
    if feedback is not None:  # only then, so fingerprints of runs without feedback stay as they were
        recipe |= {"feedback_file": feedback.name, "feedback_weight": float(feedback_weight)}
    report = {
        "recipe": recipe,
        "files": files_report,
        "duplicate_texts_with_conflicting_labels": conflicts["conflicting_texts"],
        "rows_dropped_for_label_ties": conflicts["tie_rows"],
        "rows_outvoted_by_majority_label": conflicts["outvoted_rows"],
        "splits": {
            "train": train.counts()
            | {"from_train_only_files": len(only_rows)}
            | ({"from_feedback": sum(row[3] == feedback_index for row in only_rows)} if feedback else {}),
            "validation": validation.counts(),
            "test": test.counts(),
            **{name: split.counts() for name, split in external_splits.items()},
        },
        "leakage_check": "passed: no validation, test or external-test text is in train",
    }
    return Dataset(train, validation, test, external_splits, report, fingerprint(recipe, train))


def _deduplicate(rows: list[tuple[str, str, int, int]]) -> tuple[list[tuple[str, str, int, int]], dict]:
    """One row per normalized text: the majority label's first copy; a tie drops the text.

    Most texts are unique, so only texts seen twice or more get a vote (keeps 1.6M rows cheap)."""
    first_at: dict[str, int] = {}
    copies: dict[str, list[int]] = {}  # text -> every row holding it, for repeated texts only
    for at, row in enumerate(rows):
        first = first_at.setdefault(row[0], at)
        if first != at:
            copies.setdefault(row[0], [first]).append(at)
    removed: dict[int, str] = {}  # row -> "duplicate" or "tie"
    conflicting = tie_rows = outvoted = 0
    for group in copies.values():
        positives = [at for at in group if rows[at][2] == 1]
        negatives = [at for at in group if rows[at][2] == 0]
        if positives and negatives:
            conflicting += 1
        if len(positives) == len(negatives):
            tie_rows += len(group)
            removed.update(dict.fromkeys(group, "tie"))
            continue
        majority, minority = (
            (positives, negatives) if len(positives) > len(negatives) else (negatives, positives)
        )
        outvoted += len(minority)
        removed.update(dict.fromkeys(majority[1:] + minority, "duplicate"))
    duplicates: Counter[int] = Counter()
    tie_dropped: Counter[int] = Counter()
    for at, reason in removed.items():
        (tie_dropped if reason == "tie" else duplicates)[rows[at][3]] += 1
    kept = [row for at, row in enumerate(rows) if at not in removed] if removed else list(rows)
    return kept, {
        "duplicates_by_source": duplicates,
        "tie_dropped_by_source": tie_dropped,
        "conflicting_texts": conflicting,
        "tie_rows": tie_rows,
        "outvoted_rows": outvoted,
    }


def _stratified_split(rows, *, seed: int, validation_fraction: float, test_fraction: float):
    """Stratified train / validation / test with a fixed seed; a zero fraction gives an empty split."""
    labels = [row[2] for row in rows]
    rest, test = rows, []
    if test_fraction:
        rest, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=labels)
    train, validation = rest, []
    if validation_fraction:
        share = validation_fraction / (1 - test_fraction)
        train, validation = train_test_split(
            rest, test_size=share, random_state=seed, stratify=[row[2] for row in rest]
        )
    return train, validation, test


def _split(
    name: str, rows: list[tuple[str, str, int, int]], weight_of: dict[int, float] | None = None
) -> Split:
    """Rows as a Split; ``weight_of`` (source index -> weight, others 1) gives it sample weights."""
    weights = None
    if weight_of:
        weights = np.asarray([weight_of.get(row[3], 1.0) for row in rows], dtype=np.float64)
    return Split(
        name=name,
        texts=[row[0] for row in rows],
        labels=np.asarray([row[2] for row in rows], dtype=np.int8),
        raw_texts=[row[1] for row in rows],
        weights=weights,
    )


def fingerprint(recipe: dict, train: Split) -> str:
    """sha256 over the recipe and the normalized train texts and labels: same data + seed, same value."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8"))
    for text, label in zip(train.texts, train.labels.tolist(), strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    return digest.hexdigest()


def check_no_leakage(train: Split, others: Mapping[str, Split] | Iterable[Split]) -> None:
    """Raise LeakageError when any text of ``others`` (after normalization) is also in ``train``."""
    named = list(others.items()) if isinstance(others, Mapping) else [(s.name, s) for s in others]
    train_texts = set(train.texts)
    problems = []
    for name, split in named:
        overlap = sorted(train_texts.intersection(split.texts))
        if overlap:
            examples = ", ".join(repr(t) for t in overlap[:3])
            problems.append(f"{len(overlap)} texts of '{name}' are in '{train.name}' (e.g. {examples})")
    if problems:
        raise LeakageError("leakage: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------- feedback


def split_feedback(
    loaded: LoadedFile, *, seed: int = SEED, share: float = HOLDOUT_SHARE
) -> tuple[LoadedFile, LoadedFile]:
    """(training part, held-out part) of a loaded feedback file; texts empty after normalization are
    dropped from both (nothing to learn or judge)."""
    if not 0 <= share < 1:
        raise ValueError(f"the held-out share must be in [0, 1), got {share}")
    held = [bool(text) and is_held_out(text, seed=seed, share=share) for text in loaded.texts]
    kept = [bool(text) and not out for text, out in zip(loaded.texts, held, strict=True)]

    def part(mask: list[bool], name: str) -> LoadedFile:
        rows = [i for i, keep in enumerate(mask) if keep]
        return dataclasses.replace(
            loaded,
            name=name,
            texts=[loaded.texts[i] for i in rows],
            raw_texts=[loaded.raw_texts[i] for i in rows],
            labels=np.asarray(loaded.labels[rows], dtype=np.int8),
        )

    return part(kept, loaded.name), part(held, f"{loaded.name} (held out)")


def held_out_split(path: Path | str, *, seed: int = SEED, share: float = HOLDOUT_SHARE) -> Split:
    """The held-out part of a feedback file as a test split (what ``compare`` judges the fixes on)."""
    _, held = split_feedback(load_file(path), seed=seed, share=share)
    return Split(HOLDOUT_SET, held.texts, held.labels, held.raw_texts)


# ------------------------------------------------------------------------------------------- the recipe

SHARED_POOL = (
    "sentiment140/training.sample20k.csv",
    "semeval/semeval2013_2016_binary.csv",
    "tweet_sentiment_extraction/train_binary.csv",
    "small/hcr_binary_train.csv",
    "small/hcr_binary_dev.csv",
    "small/omd_binary.csv",
    "small/sanders_binary.csv",
    "small/ss_twitter_binary.csv",
)
SHARED_HEADTAIL = "sentiment140/headtail100k.csv"
SHARED_EXTERNAL = {
    "sentiment140_manual": "sentiment140/testdata.manual.2009.06.14.csv",
    "semeval2017_test": "semeval/semeval2017_test_binary.csv",
    "sts_gold": "small/sts_gold_binary.csv",
    "hcr_test": "small/hcr_binary_test.csv",
}


def shared_recipe(data_dir: Path | str, *, with_headtail: bool = False) -> dict:
    """``build_dataset`` keyword arguments for the committed model's data (the labelled tweet folder)."""
    data_dir = Path(data_dir)
    recipe = {
        "train_files": [data_dir / name for name in SHARED_POOL],
        "external_tests": {name: data_dir / rel for name, rel in SHARED_EXTERNAL.items()},
        "train_only_files": [data_dir / SHARED_HEADTAIL] if with_headtail else [],
    }
    wanted = [*recipe["train_files"], *recipe["external_tests"].values(), *recipe["train_only_files"]]
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the labelled tweet folder {data_dir} lacks: {', '.join(missing)}. To train on your own files, "
            f"give each with --data FILE ({ACCEPTED_FORMATS})"
        )
    return recipe


ACCEPTED_FORMATS = (
    "Sentiment140 as Kaggle ships it, a CSV with a 'label,text' header, JSON or JSON Lines; "
    "plain, .gz or a .zip holding one file"
)
TWEET_FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".js", ".gz", ".zip")


def tweet_files(paths: Sequence[Path | str]) -> list[Path]:
    """The files named, a folder standing for the tweet files in it (by suffix, sorted, recursively)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in TWEET_FILE_SUFFIXES and not p.name.startswith(".")
            )
            if not inside:
                suffixes = ", ".join(TWEET_FILE_SUFFIXES)
                raise FileNotFoundError(
                    f"{path} holds no tweet file (looked for {suffixes}); accepted: {ACCEPTED_FORMATS}"
                )
            found.extend(inside)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def training_recipe(
    data_dir: Path | str | None, data_files: Sequence[Path | str] = (), *, with_headtail: bool = False
) -> dict:
    """``build_dataset`` keyword arguments: the labelled tweet folder's recipe and/or the user's own
    files. Own files join the pool (split train / validation / test like the rest); without a folder
    they are the whole pool and the internal test split is the only test set."""
    files = tweet_files(data_files)
    if data_dir is None:
        if not files:
            raise ValueError("give --data-dir DIR and/or --data FILE")
        if with_headtail:
            raise ValueError("--with-headtail needs --data-dir (the head/tail file is in that folder)")
        return {"train_files": files, "external_tests": {}, "train_only_files": []}
    recipe = shared_recipe(data_dir, with_headtail=with_headtail)
    recipe["train_files"] = [*recipe["train_files"], *files]
    return recipe
