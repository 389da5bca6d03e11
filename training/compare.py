"""``compare``: may a newly trained model (the challenger) replace the served one (the champion)?

Both are scored the way ``evaluate`` scores an ONNX file (serving's normalizer and graph, each at its own
stored threshold) on the same test sets, and on the held-out part of the feedback (the same texts
``train`` kept out, ``training.feedback``). The gate:

1. on no test set does the challenger lose more than ``max_drop`` of macro-F1 or of ROC-AUC;
2. of the held-out feedback tweets the champion gets wrong, the challenger gets at least ``min_fixed``
   right, net of those it gets newly wrong ((fixed - broken) / champion errors; passes when the champion
   gets none wrong). Net, because a challenger that flips every answer "fixes" every error.

The report (``comparison.json``, ``comparison.md``) gives every figure, the rule each check applied and
why the gate failed, if it did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.dataset import Split
from training.evaluate import LoadedModel
from training.metrics import HEADLINE, binary_metrics, predict_labels

# A drop this small is a rounding difference, not a loss.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Gate:
    max_drop: float = 0.005  # largest allowed loss of macro-F1 or ROC-AUC on any test set
    min_fixed: float = 0.5  # smallest share of the champion's held-out feedback errors to fix


def _within(drop: float | None, gate: Gate) -> bool:
    return drop is None or drop <= gate.max_drop + _EPSILON


def _identity(model: LoadedModel) -> dict:
    return {
        "path": str(model.path),
        "model_version": model.metadata.get("model_version"),
        "threshold": model.threshold,
    }


def compare_on_test_set(champion: LoadedModel, challenger: LoadedModel, split: Split, gate: Gate) -> dict:
    """Both models' headline metrics on one labelled set, the drops and whether they pass."""
    result = {"n": len(split.texts)}
    for role, model in (("champion", champion), ("challenger", challenger)):
        metrics = binary_metrics(split.labels, model.negative_probability(split.texts), model.threshold)
        result[role] = {key: None if metrics[key] is None else round(metrics[key], 6) for key in HEADLINE}
    drops = {}
    for metric in ("f1", "roc_auc"):
        before, after = result["champion"][metric], result["challenger"][metric]
        drops[metric] = None if before is None or after is None else round(before - after, 6)
    result["drop"] = drops
    result["passed"] = all(_within(drop, gate) for drop in drops.values())
    return result


def compare_on_feedback(champion: LoadedModel, challenger: LoadedModel, split: Split, gate: Gate) -> dict:
    """How many of the champion's errors on held-out feedback the challenger fixes (and breaks)."""
    truth = np.asarray(split.labels)
    wrong_before = predict_labels(champion.negative_probability(split.texts), champion.threshold) != truth
    wrong_after = predict_labels(challenger.negative_probability(split.texts), challenger.threshold) != truth
    errors = int(wrong_before.sum())
    fixed = int((wrong_before & ~wrong_after).sum())
    broken = int((~wrong_before & wrong_after).sum())
    share = None if errors == 0 else round(fixed / errors, 6)
    net = None if errors == 0 else round((fixed - broken) / errors, 6)
    return {
        "n": len(split.texts),
        "champion_errors": errors,
        "challenger_errors": int(wrong_after.sum()),
        "fixed": fixed,
        "broken": broken,
        "fixed_share": share,
        "net_fixed_share": net,
        "passed": net is None or net >= gate.min_fixed - _EPSILON,
    }


def compare_models(
    champion: LoadedModel,
    challenger: LoadedModel,
    test_sets: dict[str, Split],
    feedback: Split | None,
    gate: Gate,
) -> dict:
    """The whole comparison; ``passed`` is the gate's verdict and ``failures`` says why not."""
    if not test_sets and feedback is None:
        raise ValueError("nothing to compare on: give --data-dir, --test FILE or --feedback FILE")
    results = {
        name: compare_on_test_set(champion, challenger, split, gate) for name, split in test_sets.items()
    }
    failures = []
    for name, result in results.items():
        lost = [
            f"{drop:.4f} of {metric}" for metric, drop in result["drop"].items() if not _within(drop, gate)
        ]
        if lost:
            failures.append(
                f"{name}: the challenger loses {' and '.join(lost)} (at most {gate.max_drop} allowed)"
            )
    feedback_result = None
    if feedback is not None:
        feedback_result = compare_on_feedback(champion, challenger, feedback, gate)
        if not feedback_result["passed"]:
            failures.append(
                f"held-out feedback: challenger fixes {feedback_result['fixed']} of the champion's "
                f"{feedback_result['champion_errors']} errors and breaks {feedback_result['broken']} "
                f"(net {feedback_result['net_fixed_share']:.0%}; at least {gate.min_fixed:.0%} needed)"
            )
    return {
        "passed": not failures,
        "failures": failures,
        "gate": asdict(gate),
        "champion": _identity(champion),
        "challenger": _identity(challenger),
        "test_sets": results,
        "feedback": feedback_result,
    }


def markdown_report(comparison: dict) -> str:
    """``comparison.md``: verdict, one row per test set, then the feedback line."""
    gate, feedback = comparison["gate"], comparison["feedback"]
    verdict = "PASS: the challenger may replace the champion" if comparison["passed"] else "FAIL"
    lines = ["# Champion / challenger comparison", "", f"**{verdict}**", ""]
    for role in ("champion", "challenger"):
        model = comparison[role]
        lines.append(
            f"- {role} `{model['path']}` (version `{model['model_version']}`, "
            f"threshold {model['threshold']:.2f})"
        )
    lines += [
        f"- gate: no test set loses more than {gate['max_drop']} of macro-F1 or ROC-AUC; the challenger "
        f"fixes at least {gate['min_fixed']:.0%} of the champion's errors on held-out feedback",
        "",
    ]
    if comparison["test_sets"]:
        header = (
            "test set | n | macro-F1 champion | macro-F1 challenger | ROC-AUC champion | ROC-AUC challenger"
        )
        lines += [f"| {header} | passed |", "|---|---|---|---|---|---|---|"]
        for name, result in comparison["test_sets"].items():
            cells = [
                _figure(result[role][m]) for m in ("f1", "roc_auc") for role in ("champion", "challenger")
            ]
            lines.append(
                f"| {name} | {result['n']} | " + " | ".join(cells) + f" | {_yes(result['passed'])} |"
            )
        lines.append("")
    if feedback is not None:
        share, net = feedback["fixed_share"], feedback["net_fixed_share"]
        share = "n/a: the champion makes no error" if share is None else f"{share:.0%}; net {net:.0%}"
        lines += [
            f"Held-out feedback ({feedback['n']} tweets): the champion gets {feedback['champion_errors']} "
            f"wrong; the challenger fixes {feedback['fixed']} of them ({share}) and gets "
            f"{feedback['broken']} others wrong; {_yes(feedback['passed'])}.",
            "",
        ]
    if comparison["failures"]:
        lines += ["Why it failed:", "", *[f"- {failure}" for failure in comparison["failures"]], ""]
    return "\n".join(lines)


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _yes(passed: bool) -> str:
    return "passed" if passed else "FAILED"


def write_report(comparison: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "comparison.json", out_dir / "comparison.md"
    json_path.write_text(json.dumps(comparison, indent=2), encoding="utf-8")
    md_path.write_text(markdown_report(comparison), encoding="utf-8")
    return json_path, md_path
