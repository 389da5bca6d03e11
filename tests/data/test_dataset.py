"""Dataset building: cleaning counts, duplicate policy, stratified deterministic splits, no leakage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.normalizer import normalize
from tests.tweet_factory import write_labelled
from training.dataset import (
    LeakageError,
    Split,
    build_dataset,
    check_no_leakage,
    load_split,
    shared_recipe,
)

POSITIVE = ("love", "great", "smooth", "friendly", "thanks", "awesome")
NEGATIVE = ("lost", "delayed", "rude", "awful", "cancelled", "stuck")
FILLER = ("flight", "crew", "bag", "seat", "gate", "today", "paris", "again")


def distinct_rows(count: int, seed: int, positive_share: float = 0.5) -> list[tuple[int, str]]:
    """``count`` tweets with distinct normalized texts (a running number makes each one unique)."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(count):
        label = int(rng.random() < positive_share)
        words = [*rng.choice(FILLER, 3), rng.choice(POSITIVE if label else NEGATIVE)]
        rows.append((label, f"@someone {' '.join(words)} #{seed}x{number}"))
    return rows


def pool_and_tests(tmp_path: Path) -> tuple[list[Path], dict[str, Path]]:
    pool = [
        write_labelled(tmp_path / "a.csv", distinct_rows(300, seed=1, positive_share=0.3)),
        write_labelled(tmp_path / "b.csv", distinct_rows(200, seed=2, positive_share=0.6)),
    ]
    tests = {"held_out": write_labelled(tmp_path / "test.csv", distinct_rows(50, seed=3))}
    return pool, tests


def test_cleaning_counts_empty_duplicates_conflicts_and_test_overlap(tmp_path: Path) -> None:
    base = distinct_rows(40, seed=7)
    pool = write_labelled(
        tmp_path / "pool.csv",
        [
            *base,
            (1, "..."),  # empty after normalization
            (0, "&amp; -- ."),  # empty after normalization
            (1, "Thanks for the GREAT flight!!"),
            (1, "thanks for the great flight !"),  # same text once normalized, same label
            (0, "the food was ok"),
            (1, "The food was OK"),  # tie: 1 negative, 1 positive -> both dropped
            (1, "seats were fine"),
            (1, "Seats were fine"),
            (0, "seats were FINE"),  # 2 positive vs 1 negative -> positive kept, one outvoted
            (0, "Lost my bag at CDG http://t.co/abc"),  # also in the test set (after normalization)
        ],
    )
    test = write_labelled(tmp_path / "test.csv", [(0, "lost my bag at cdg https://bit.ly/zzz"), (1, "great")])
    dataset = build_dataset(
        [pool], {"held_out": test}, progress=False, validation_fraction=0.2, test_fraction=0.2
    )
    counts = dataset.report["files"]["pool.csv"]
    assert counts["read"] == 50
    assert counts["empty_after_normalization"] == 2
    assert counts["removed_external_test_overlap"] == 1
    assert counts["overlap_by_test_set"] == {"held_out": 1}
    assert counts["conflicting_label_dropped"] == 2
    assert counts["duplicates"] == 1 + 2  # one agreeing copy, two copies of the majority text
    assert counts["kept"] == 40 + 1 + 1
    assert counts["read"] == (
        counts["kept"]
        + counts["empty_after_normalization"]
        + counts["removed_external_test_overlap"]
        + counts["duplicates"]
        + counts["conflicting_label_dropped"]
    )
    assert dataset.report["duplicate_texts_with_conflicting_labels"] == 2
    assert dataset.report["rows_dropped_for_label_ties"] == 2
    assert dataset.report["rows_outvoted_by_majority_label"] == 1

    everything = dict(
        zip(
            dataset.train.texts + dataset.validation.texts + dataset.test.texts,
            np.concatenate([dataset.train.labels, dataset.validation.labels, dataset.test.labels]).tolist(),
            strict=True,
        )
    )
    assert len(everything) == 42  # no text twice across splits
    assert everything["seats were fine"] == 1
    assert everything["thanks for the great flight !"] == 1
    assert "the food was ok" not in everything
    assert "" not in everything
    assert normalize("Lost my bag at CDG http://t.co/abc") not in everything
    assert dataset.report["splits"]["held_out"] == {"rows": 2, "negative": 1, "positive": 1}


def test_splits_are_stratified_and_sized(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    dataset = build_dataset(pool, tests, progress=False, validation_fraction=0.1, test_fraction=0.2)
    total = len(dataset.train) + len(dataset.validation) + len(dataset.test)
    assert total == 500
    assert len(dataset.test) == 100
    assert len(dataset.validation) == 50
    overall = np.concatenate([dataset.train.labels, dataset.validation.labels, dataset.test.labels]).mean()
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.labels.dtype == np.int8
        assert set(np.unique(split.labels)) <= {0, 1}
        assert abs(split.labels.mean() - overall) < 0.02, split.name
        assert split.texts == [normalize(raw) for raw in split.raw_texts]
    assert dataset.external["held_out"].name == "held_out"
    assert len(dataset.external["held_out"]) == 50


def test_same_seed_same_dataset_other_seed_other_split(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    first = build_dataset(pool, tests, progress=False)
    again = build_dataset(pool, tests, progress=False)
    other = build_dataset(pool, tests, progress=False, seed=14)
    assert first.fingerprint == again.fingerprint
    assert first.train.texts == again.train.texts
    assert first.test.texts == again.test.texts
    assert first.report == again.report
    assert other.fingerprint != first.fingerprint
    assert set(other.test.texts) != set(first.test.texts)
    assert len(first.fingerprint) == 64 and int(first.fingerprint, 16) >= 0


def test_fingerprint_follows_the_training_labels(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    before = build_dataset(pool, tests, progress=False).fingerprint
    rows = distinct_rows(200, seed=2, positive_share=0.6)
    rows[0] = (1 - rows[0][0], rows[0][1])
    write_labelled(pool[1], rows)
    assert build_dataset(pool, tests, progress=False).fingerprint != before


def test_train_only_rows_go_to_train_only_and_are_deduplicated(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    pool_rows = distinct_rows(300, seed=1, positive_share=0.3)
    extra = [(0, f"extra tweet number {n} delayed") for n in range(30)]
    only = write_labelled(
        tmp_path / "only.csv",
        [*extra, *extra[:5], *pool_rows[:40], *distinct_rows(1, seed=3)],
    )
    dataset = build_dataset(pool, tests, train_only_files=[only], progress=False)
    counts = dataset.report["files"]["only.csv"]
    assert counts["role"] == "train only"
    assert counts["removed_external_test_overlap"] == 1  # the copy of the held-out test tweet
    assert counts["duplicates"] == 5 + 40  # its own repeats and the copies of pool tweets
    assert counts["kept"] == 30
    assert dataset.report["splits"]["train"]["from_train_only_files"] == 30
    extra_texts = {normalize(text) for _, text in extra}
    assert extra_texts <= set(dataset.train.texts)
    assert not extra_texts & (set(dataset.validation.texts) | set(dataset.test.texts))
    # A pool tweet that landed in validation/test is not smuggled into train by its train-only copy.
    check_no_leakage(dataset.train, [dataset.validation, dataset.test, *dataset.external.values()])
    assert len(dataset.train.texts) == len(set(dataset.train.texts))


def test_check_no_leakage_names_the_set_and_the_count() -> None:
    def split(name: str, texts: list[str]) -> Split:
        return Split(name, texts, np.zeros(len(texts), dtype=np.int8), texts)

    train = split("train", ["lost my bag", "great crew", "on time"])
    check_no_leakage(train, [split("validation", ["rude staff"]), split("sts_gold", ["late again"])])
    with pytest.raises(LeakageError) as caught:
        check_no_leakage(
            train, {"validation": split("v", ["rude"]), "sts_gold": split("s", ["great crew", "on time"])}
        )
    message = str(caught.value)
    assert "2 texts of 'sts_gold'" in message
    assert "'great crew'" in message
    assert "validation" not in message


def test_build_dataset_refuses_unlabelled_tweets(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps([{"text": "no label here"}, {"text": "labelled", "label": 1}]), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="1 tweets have no label"):
        build_dataset([*pool, export], tests, progress=False)


def test_bad_fractions_are_refused(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    with pytest.raises(ValueError, match="fraction"):
        build_dataset(pool, tests, progress=False, validation_fraction=0.6, test_fraction=0.5)
    empty_validation = build_dataset(pool, tests, progress=False, validation_fraction=0.0)
    assert len(empty_validation.validation) == 0
    assert len(empty_validation.train) + len(empty_validation.test) == 500


def test_progress_bars_do_not_change_the_result(tmp_path: Path) -> None:
    pool, tests = pool_and_tests(tmp_path)
    assert (
        build_dataset(pool, tests, progress=True).fingerprint
        == build_dataset(pool, tests, progress=False).fingerprint
    )


def test_load_split_normalizes_a_whole_test_file(tmp_path: Path) -> None:
    path = write_labelled(
        tmp_path / "airline_test.csv", [(0, "Lost my BAG @airline"), (1, "..."), (0, "Lost my BAG @airline")]
    )
    split = load_split(path)
    assert split.name == "airline_test"
    assert split.texts == ["lost my bag user", "", "lost my bag user"]  # test files are kept whole
    assert split.raw_texts[0] == "Lost my BAG @airline"
    assert split.labels.tolist() == [0, 1, 0]
    assert load_split(path, "named").name == "named"


def test_shared_recipe_names_every_file_and_refuses_a_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"training\.sample20k\.csv"):
        shared_recipe(tmp_path)


# ------------------------------------------------------------------------------------------ shared data


@pytest.fixture(scope="module")
def shared_dataset(data_dir: Path):
    return build_dataset(**shared_recipe(data_dir, with_headtail=True), progress=False)


@pytest.mark.data
@pytest.mark.slow
def test_shared_recipe_has_no_external_test_text_in_any_split(shared_dataset, data_dir: Path) -> None:
    recipe = shared_recipe(data_dir, with_headtail=True)
    assert set(shared_dataset.external) == {"sentiment140_manual", "semeval2017_test", "sts_gold", "hcr_test"}
    assert recipe["train_only_files"] == [data_dir / "sentiment140/headtail100k.csv"]
    assert shared_recipe(data_dir)["train_only_files"] == []
    internal = {
        "train": set(shared_dataset.train.texts),
        "validation": set(shared_dataset.validation.texts),
        "test": set(shared_dataset.test.texts),
    }
    for name, path in recipe["external_tests"].items():
        external = set(load_split(path).texts)
        assert external == set(shared_dataset.external[name].texts)
        for split_name, texts in internal.items():
            assert not texts & external, f"{name} leaks into {split_name}"
    assert not internal["train"] & internal["validation"]
    assert not internal["train"] & internal["test"]
    assert not internal["validation"] & internal["test"]


@pytest.mark.data
@pytest.mark.slow
def test_shared_recipe_counts_add_up(shared_dataset) -> None:
    report = shared_dataset.report
    kept = 0
    for name, counts in report["files"].items():
        if counts["role"].startswith("external"):
            continue
        removed = (
            counts["empty_after_normalization"]
            + counts["removed_external_test_overlap"]
            + counts["duplicates"]
            + counts["conflicting_label_dropped"]
        )
        assert counts["read"] == counts["kept"] + removed, name
        kept += counts["kept"]
    splits = report["splits"]
    assert kept == splits["train"]["rows"] + splits["validation"]["rows"] + splits["test"]["rows"]
    # STS-Gold was drawn from Sentiment140: its tweets are in both Sentiment140 training files.
    assert report["files"]["sentiment140/headtail100k.csv"]["overlap_by_test_set"]["sts_gold"] > 300
    assert report["files"]["sentiment140/training.sample20k.csv"]["overlap_by_test_set"]["sts_gold"] > 20
    assert splits["sentiment140_manual"] == {"rows": 359, "negative": 177, "positive": 182}
    assert splits["train"]["from_train_only_files"] > 90_000
