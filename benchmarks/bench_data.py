"""Data-stage speed at Sentiment140 scale: write a synthetic file, read it, build the dataset. Prints JSON.

    python benchmarks/bench_data.py --rows 1600000

Stages: ``synth`` (write the file), ``read`` (``read_tweets``), ``build_dataset`` (read + normalize +
clean + split), each as wall-clock and CPU seconds (CPU time stays meaningful on a busy machine).
Peak RSS is the process maximum (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data import read_tweets
from training.dataset import build_dataset
from training.synth import write_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_600_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--file", type=Path, help="an existing Sentiment140-format file (skips synth)")
    args = parser.parse_args()

    stages: dict[str, float] = {}

    def stage(name: str, wall: float, cpu: float) -> None:
        stages[f"{name}_s"] = round(time.perf_counter() - wall, 2)
        stages[f"{name}_cpu_s"] = round(time.process_time() - cpu, 2)

    with tempfile.TemporaryDirectory() as folder:
        path = args.file
        if path is None:
            path = Path(folder) / "training.1600000.processed.noemoticon.csv"
            wall, cpu = time.perf_counter(), time.process_time()
            write_synthetic(path, args.rows, args.seed)
            stage("synth", wall, cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        tweets = read_tweets(path)
        stage("read", wall, cpu)
        rows = len(tweets.texts)
        del tweets
        wall, cpu = time.perf_counter(), time.process_time()
        dataset = build_dataset([path], {}, progress=False)
        stage("build_dataset", wall, cpu)
        result = {
            "rows": rows,
            "file_mb": round(path.stat().st_size / 2**20, 1),
            **stages,
            "splits": {
                name: dataset.report["splits"][name]["rows"] for name in ("train", "validation", "test")
            },
            "cpu_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
