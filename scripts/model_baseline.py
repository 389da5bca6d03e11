"""Print the score-drift baseline of a model as a Bicep parameter, for the deploy.

``python scripts/model_baseline.py model/sentiment.onnx`` prints ``scoreBaselineHistogram=[...]``: the
model's ``validation_histogram`` metadata (10 counts over [0, 1)), or the uniform placeholder for a model
exported before the key existed (a warning on stderr says so). Pass it to the deployment:
``az deployment group create ... -p scoreBaselineHistogram="$(python scripts/model_baseline.py M --value)"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.contract import VALIDATION_HISTOGRAM, read_metadata

PLACEHOLDER = [1] * 10


def baseline(path: Path) -> tuple[list[int], bool]:
    """(histogram, whether it came from the model)."""
    value = read_metadata(path, strict=False).get(VALIDATION_HISTOGRAM)
    if isinstance(value, list) and len(value) == 10 and all(isinstance(c, int) and c >= 0 for c in value):
        return value, True
    return PLACEHOLDER, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--value", action="store_true", help="print only the JSON array")
    args = parser.parse_args(argv)
    histogram, found = baseline(args.model)
    if not found:
        print(f"{args.model} has no {VALIDATION_HISTOGRAM}: using the uniform placeholder", file=sys.stderr)
    text = json.dumps(histogram, separators=(",", ":"))
    print(text if args.value else f"scoreBaselineHistogram={text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
