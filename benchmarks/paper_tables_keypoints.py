"""The seed paper's Table 1 and Table 2 re-run with the product's network (the real-trained
keypoint network and the fitted template) on the synthetic domain shift.

The shipped landmark network is tested directly on a labelled ``target`` test split, then
adapted without labels on an unlabelled ``target`` train split (binocular; monocular; and
binocular with each of the six losses of eq. 10 removed in turn) and tested again. Every run
goes through the ``adapt`` command's implementation
(:func:`stereo_hand_mesh.train.adapt_keypoints.adapt_keypoints`, writing the adapted network
whatever its validation says, ``output="adapted"``, and without the per-user calibration:
the simulator draws a new hand shape for every pair) and is scored by the product pipeline
(:func:`stereo_hand_mesh.pipeline.factory.create_pipeline`, each pair a cold start): mean
joint error over the pairs where it publishes a mesh, and how many those are.

Synthetic figures are for the paper's experiment, not for telling users how good the product
is (real pairs: ``benchmarks/bench_adapt_real.py``). Usage (writes the splits when missing)::

    python benchmarks/paper_tables_keypoints.py --train runs/data/kp_target_train \\
        --test runs/data/kp_target_test --out benchmarks/results/paper_tables_keypoints

Writes ``<out>.json`` (every run's figures, settings, wall time, the machine) and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description
from paper_tables import PAPER as PAPER_MM

from stereo_hand_mesh.data.sources import iter_stereo_samples
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.losses import StereoLossWeights
from stereo_hand_mesh.pipeline import PipelineSettings
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.train.adapt import LOSS_NAMES
from stereo_hand_mesh.train.adapt_keypoints import KeypointAdaptSettings, adapt_keypoints

REPO = Path(__file__).resolve().parents[1]
PAPER = {**PAPER_MM, "no_keypoint": None}  # no_keypoint: not in the paper (our further term)


def ensure_split(path: Path, count: int, seed: int) -> None:
    """Write a target-domain split at ``path`` with the ``synth`` command when it is missing."""
    if path.is_dir():
        return
    subprocess.run(
        [str(REPO / ".venv/bin/stereo-hand-mesh"), "synth", "--domain", "target", "--count",
         str(count), "--seed", str(seed), "--out", str(path), "--quiet"],
        check=True,
    )  # fmt: skip


def score(test: Path, model: Path | None, threads: int) -> dict[str, Any]:
    """The product pipeline on every labelled pair of ``test`` (cold starts)."""
    pipeline = create_pipeline(
        PipelineSettings(smoothing=False, tracking=False),
        "onnxruntime",
        model,
        intra_op_threads=threads,
        apply_calibration=False,
    ).pipeline
    errors: dict[int, float] = {}
    count = 0
    for sample in iter_stereo_samples(test, load_ground_truth=True):
        count += 1
        rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
        pipeline.reset()
        est = pipeline.process(sample.left, sample.right, rig)
        if est.found and sample.joints is not None:
            errors[int(sample.index)] = float(
                np.linalg.norm(est.joints - sample.joints, axis=1).mean() * 1e3
            )
    values = list(errors.values())
    return {
        "pairs": count,
        "found": len(values),
        "mean_mm": statistics.fmean(values) if values else None,
        "median_mm": statistics.median(values) if values else None,
        "per_pair_mm": errors,
    }


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Means over the pairs both runs found."""
    common = sorted(set(a["per_pair_mm"]) & set(b["per_pair_mm"]))
    if not common:
        return {"pairs": 0}
    return {
        "pairs": len(common),
        "a_mm": statistics.fmean(a["per_pair_mm"][k] for k in common),
        "b_mm": statistics.fmean(b["per_pair_mm"][k] for k in common),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ensure_split(args.train, args.train_count, 1001)
    ensure_split(args.test, args.test_count, 2002)
    settings = KeypointAdaptSettings(
        epochs=args.epochs,
        layers=args.layers,
        lr=args.lr,
        keypoint_weight=args.keypoint_weight,
    )
    runs: dict[str, Any] = {"test_directly": score(args.test, None, args.threads)}
    plan = [("binocular", "binocular", ()), ("monocular", "monocular", ())]
    plan += [(f"no_{name}", "binocular", (name,)) for name in LOSS_NAMES]
    plan += [("no_keypoint", "binocular", ("keypoint",))]  # the further term's ablation
    for name, variant, drop in plan:
        weights = StereoLossWeights(**{k: 0.0 for k in drop if k != "keypoint"})
        run_settings = (
            dataclasses.replace(settings, keypoint_weight=0.0) if "keypoint" in drop else settings
        )
        t0 = time.perf_counter()
        report = adapt_keypoints(
            args.train,
            workdir / f"{name}.onnx",
            run_settings,
            variant=variant,
            weights=weights,
            seed=args.seed,
            calibrate=False,
            threads=args.threads,
            progress=not args.quiet,
            output="adapted",
        )
        seconds = time.perf_counter() - t0
        result = score(args.test, workdir / f"{name}.onnx", args.threads)
        result |= {
            "variant": variant,
            "drop": list(drop),
            "seconds": seconds,
            "pairs_adapted": report.details["pairs_adapted"],
            "skipped": report.details["skipped"],
            "validation": {k: v and v["score"] for k, v in report.details["validation"].items()},
            "decision": report.decision,
            "paired_with_test_directly": paired(runs["test_directly"], result),
        }
        runs[name] = result
        if not args.quiet:
            print(f"{name}: found {result['found']}/{result['pairs']}, {result['mean_mm']} mm")
    return {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_description(),
        "train": str(args.train),
        "test": str(args.test),
        "settings": settings.__dict__,
        "paper_mm": PAPER,
        "runs": runs,
    }


def markdown(payload: dict[str, Any]) -> str:
    runs = payload["runs"]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    def row(name: str) -> str:
        r = runs[name]
        p = r.get("paired_with_test_directly", {})
        both = (
            f"{f(p.get('a_mm'))} -> {f(p.get('b_mm'))} ({p['pairs']})" if p.get("pairs") else "-"
        )
        return (
            f"| {name} | {r['found']}/{r['pairs']} | {f(r['mean_mm'])} | {both} | "
            f"{'-' if PAPER[name] is None else f'{PAPER[name]:.2f}'} |"
        )

    head = (
        "| run | found | mean mm (found) | test directly -> run on pairs both found (n) | "
        "paper mm |\n|---|---|---|---|---|"
    )
    t1 = [row(n) for n in ("test_directly", "binocular", "monocular")]
    t2 = [row(n) for n in ("binocular", *[f"no_{x}" for x in LOSS_NAMES], "no_keypoint")]
    return "\n".join(
        [
            f"Keypoint network on the synthetic shift ({payload['machine']})",
            "",
            "Table 1",
            "",
            head,
            *t1,
            "",
            "Table 2 (binocular, one loss removed; no_keypoint: our further term removed)",
            "",
            head,
            *t2,
            "",
        ]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--train", type=Path, default=REPO / "runs/data/kp_target_train")
    p.add_argument("--test", type=Path, default=REPO / "runs/data/kp_target_test")
    p.add_argument("--train-count", type=int, default=150)
    p.add_argument("--test-count", type=int, default=100)
    p.add_argument("--epochs", type=int, default=KeypointAdaptSettings.epochs)
    p.add_argument("--layers", default=KeypointAdaptSettings.layers)
    p.add_argument("--lr", type=float, default=KeypointAdaptSettings.lr)
    p.add_argument("--keypoint-weight", type=float, default=KeypointAdaptSettings.keypoint_weight)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/paper_tables_keypoints")
    args = p.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        payload = run(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
