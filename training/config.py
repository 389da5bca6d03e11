"""Settings every training stage shares, typed once: the seed, the named test sets, the targets, the paths.

Light on purpose (standard library only): the command line reads its defaults from here without loading
scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

from serving import contract

# Splits, searches, subsamples, solvers and synthetic data: one seed makes a run reproducible.
SEED = 13

# The candidates ``train`` compares unless told otherwise (``training.modeling.candidates`` defines them).
DEFAULT_CANDIDATES = (
    "baseline",
    "logreg_tuned",
    "nb_logreg",
    "linear_svm",
    "random_forest",
    "gradient_boosting",
)

# The published test sets, by the names reports and metadata use, with their titles for humans.
TEST_SET_TITLES = {
    "test": "internal test split",
    "sentiment140_manual": "Sentiment140 manual test",
    "semeval2017_test": "SemEval-2017 test",
    "sts_gold": "STS-Gold",
    "hcr_test": "HCR test",
}
# Quality goals per test set: (metric key, label, minimum).
TARGETS = {
    "sentiment140_manual": [("accuracy", "accuracy", 0.88)],
    "semeval2017_test": [("f1", "macro-F1", 0.80), ("roc_auc", "ROC-AUC", 0.92)],
    "sts_gold": [("f1", "macro-F1", 0.90)],
}

# Where the commands read and write by default.
MODEL_PATH = Path(contract.DEFAULT_MODEL_PATH)
MODEL_CARD = Path("model/README.md")
TRAIN_REPORTS = Path("reports/train")
SEARCH_REPORTS = Path("reports/search")
EVALUATE_REPORTS = Path("reports/evaluate")
EDA_REPORTS = Path("reports/eda")
CASCADE_REPORTS = Path("reports/cascade")
# The cascade file serving reads beside the n-gram model (MODEL_ENCODER_PATH's default).
CASCADE_PATH = Path("model/encoder.onnx")
