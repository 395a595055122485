"""Benchmark: the hand locator against ground truth, per synthetic domain and locator variant.

For every pair of a synthetic split (ground-truth vertex projections in both views) the
locator runs without tracking or ROI (the cold-start case: skin colour and stereo alone) and
is scored against the ground-truth box, the square box the locator itself would put around
the projected vertices (:func:`~stereo_hand_mesh.pipeline.locator.square_box_around`):

- ``found_rate``: share of pairs where the locator returned boxes;
- ``iou50_rate``: share of all pairs whose left box has IoU >= 0.5 with the ground truth;
- ``disparity_error_px_median``: median |located - ground-truth median vertex disparity|
  over the pairs with IoU >= 0.5, image pixels;
- ``locate_ms_p50`` / ``_p95``: wall time of :func:`locate_hand` (images already RGB).

The splits come from the synth command (generated once, never by this script)::

    .venv/bin/stereo-hand-mesh synth --domain target --count 200 --seed 7 \\
        --out runs/data/target_test
    .venv/bin/stereo-hand-mesh synth --domain source --count 100 --seed 11 \\
        --out runs/data/source_test
    .venv/bin/python benchmarks/bench_locator.py --json benchmarks/results/locator.json

Settings were chosen on a separate development split (``--domain target --count 100 --seed 3
--out runs/data/target_dev``; ``stereo_extent_growth`` 1.0 / 1.1 / 1.2 / 1.3 gave IoU >= 0.5
on 84 / 88 / 90 / 86 % of it), never on the splits reported here.

Variants: ``skin`` is the skin-colour locator alone (``stereo_candidates=False``), ``default``
the locator's default settings. Writes the JSON and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description, percentile

from stereo_hand_mesh.data import StereoSetReader
from stereo_hand_mesh.pipeline.locator import (
    LocatorSettings,
    box_iou,
    locate_hand,
    square_box_around,
)

#: Locator variants compared (name -> settings).
VARIANTS: dict[str, LocatorSettings] = {
    "skin": replace(LocatorSettings(), stereo_candidates=False),
    "default": LocatorSettings(),
}


def score_split(split: Path, settings: LocatorSettings, limit: int | None) -> dict[str, Any]:
    """Run the locator on every pair of ``split`` and score it (see the module docstring)."""
    reader = StereoSetReader(split)
    n = len(reader) if limit is None else min(limit, len(reader))
    found = good = 0
    disparity_errors: list[float] = []
    times_ms: list[float] = []
    for i in range(n):
        sample = reader[i]
        uv_l, uv_r = sample.vertices_uv_left, sample.vertices_uv_right
        if uv_l is None or uv_r is None:
            raise SystemExit(f"{split} expected vertex projections (a synth split); got none")
        truth = square_box_around(uv_l.min(0), uv_l.max(0), settings)
        t0 = time.perf_counter()
        boxes = locate_hand(sample.left, sample.right, settings)
        times_ms.append((time.perf_counter() - t0) * 1e3)
        if boxes is None:
            continue
        found += 1
        if box_iou(boxes.left, truth) >= 0.5:
            good += 1
            gt_disparity = float(np.median(uv_l[:, 0] - uv_r[:, 0]))
            disparity_errors.append(abs(boxes.disparity_px - gt_disparity))
    return {
        "pairs": n,
        "found_rate": found / n,
        "iou50_rate": good / n,
        "disparity_error_px_median": (
            statistics.median(disparity_errors) if disparity_errors else None
        ),
        "locate_ms_p50": statistics.median(times_ms),
        "locate_ms_p95": percentile(times_ms, 0.95),
    }


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    rows = [
        "| domain | variant | pairs | found | IoU >= 0.5 | disparity error px (median) "
        "| locate ms p50 | p95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for domain, variants in result["domains"].items():
        for name, r in variants.items():
            err = r["disparity_error_px_median"]
            rows.append(
                f"| {domain} | {name} | {r['pairs']} | {r['found_rate']:.1%} | "
                f"{r['iou50_rate']:.1%} | {'-' if err is None else f'{err:.2f}'} | "
                f"{r['locate_ms_p50']:.2f} | {r['locate_ms_p95']:.2f} |"
            )
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("runs/data/target_test"))
    parser.add_argument("--source", type=Path, default=Path("runs/data/source_test"))
    parser.add_argument("--limit", type=int, default=None, help="pairs per split (default all)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads")
    parser.add_argument("--json", type=Path, default=None, help="write results here (and .md)")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    result: dict[str, Any] = {
        "machine": machine_description(),
        "command": "benchmarks/bench_locator.py " + " ".join(sys.argv[1:]),
        "config": {"opencv_threads": args.threads, "tracking": False, "roi": False},
        "variants": {name: VARIANTS[name].__dict__ for name in args.variants},
        "domains": {},
    }
    for domain, split in (("target", args.target), ("source", args.source)):
        if not (split / "meta.json").is_file():
            print(
                f"bench_locator: no split at {split} (see the module docstring)", file=sys.stderr
            )
            return 2
        result["domains"][domain] = {
            name: score_split(split, VARIANTS[name], args.limit) for name in args.variants
        }
    table = markdown(result)
    print(table, end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
