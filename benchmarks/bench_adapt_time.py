"""Benchmark: wall time of ``stereo-hand-mesh adapt`` on 300 recorded pairs (the CPU budget).

Writes (when missing) a 300-pair bag of the simulator's source domain at 640x480 (unrelated
scenes, as the adaptation node records them: at most 5 pairs a second of a moving hand), then
runs the ``adapt`` command on it ``--runs`` times as a whole process (Python start-up, model
loading, the pipeline's pass over every pair, calibration, training, validation and
writing included) and reports each run's wall time, the median, the report's breakdown and
seconds per 100 pairs::

    python benchmarks/bench_adapt_time.py --json benchmarks/results/adapt_time.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

REPO = Path(__file__).resolve().parents[1]
CLI = str(REPO / ".venv/bin/stereo-hand-mesh")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bag", type=Path, default=REPO / "runs/bench/adapt_300.bag")
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not args.bag.exists():
        subprocess.run(
            [CLI, "synth", "--domain", "source", "--count", str(args.pairs), "--bag", "--rate",
             "5", "--seed", "300", "--out", str(args.bag), "--quiet"],
            check=True,
        )  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.onnx"
            t0 = time.perf_counter()
            subprocess.run(
                [CLI, "adapt", "--data", str(args.bag), "--out", str(out), "--threads",
                 str(args.threads), "--quiet"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            report = json.loads(out.with_suffix(".json").read_text())
            runs.append(
                {
                    "wall_s": wall,
                    "seconds": report["seconds"],
                    "pairs_adapted": report["pairs_adapted"],
                    "pairs_validation": report["pairs_validation"],
                    "skipped": report["skipped"],
                    "decision": report["decision"],
                }
            )
            print(f"run {i}: {wall:.1f} s ({report['decision']})", flush=True)
    median = statistics.median(r["wall_s"] for r in runs)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_description(),
        "bag": str(args.bag),
        "pairs": args.pairs,
        "runs": runs,
        "wall_s_median": median,
        "seconds_per_100_pairs": 100.0 * median / args.pairs,
        "target_s": 120.0,
    }
    print(f"adapt on {args.pairs} pairs: median {median:.1f} s over {args.runs} runs")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
