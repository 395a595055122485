"""How the keypoint network's adaptation defaults were chosen, without labels.

On the adaptation part of a real stereo folder (default: the first half of
``../shared/realdata/tabletop_a``, frames ``0:38``; its labels are never read), the pairs the
product pipeline meshes are split in time order: the first three quarters adapt, the last
quarter is held out. With the user's calibration from the adapting pairs, every combination
of ``layers`` x ``lr`` x ``keypoint_weight`` adapts a fresh copy of the shipped network and is
scored on the held-out pairs by :func:`stereo_hand_mesh.train.adapt_keypoints.keypoint_score`
(the label-free score the product decides with; lower is better); the first row is the
calibrated initial network. The defaults of
:class:`~stereo_hand_mesh.train.adapt_keypoints.KeypointAdaptSettings` are the best row.
Without the folder the script prints ``skipped: ...`` and exits 0::

    .venv/bin/python benchmarks/bench_adapt_choice.py \\
        --json benchmarks/results/adapt_keypoints_choice.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.data.sources import iter_stereo_samples, parse_frame_slice
from stereo_hand_mesh.model.tflite_graph import load_tflite_graph_net
from stereo_hand_mesh.pipeline import PipelineSettings
from stereo_hand_mesh.pipeline.calibration import calibrate_hand, calibrated_fit_settings
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files
from stereo_hand_mesh.train.adapt_keypoints import (
    KeypointAdaptSettings,
    _split_validation,
    adapt_keypoint_network,
    keypoint_score,
    prepare_adapt_pairs,
)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/realdata/tabletop_a")
    p.add_argument("--frames", type=parse_frame_slice, default=parse_frame_slice("0:38"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not args.data.is_dir():
        print(f"skipped: real stereo folder {args.data} not found")
        return 0
    torch.set_num_threads(args.threads)
    npz = keypoint_model_files("lite")["landmarks_npz"]
    pipeline = create_pipeline(
        PipelineSettings(smoothing=False, tracking=False), "onnxruntime", None,
        intra_op_threads=args.threads, apply_calibration=False,
    ).pipeline  # fmt: skip
    samples = iter_stereo_samples(args.data, load_ground_truth=False, frames=args.frames)
    pairs = prepare_adapt_pairs(samples, pipeline)
    train, held = _split_validation(pairs, 0.25)
    calibration = calibrate_hand(train.fits, train.confidence.numpy(), min_pairs=10)
    fit = calibrated_fit_settings(pipeline.settings.fit, calibration)
    base = keypoint_score(load_tflite_graph_net(npz), held, fit_settings=fit)
    rows = [
        {
            "config": "calibrated initial network",
            "score": base["score"],
            "objective": base["objective"],
            "row_disagreement": base["row_disagreement"],
        }
    ]
    print(rows[-1], flush=True)
    for layers, lr, kw in itertools.product(("head", "late", "all"), (1e-5, 1e-4), (1.0, 1000.0)):
        net = load_tflite_graph_net(npz)
        settings = KeypointAdaptSettings(layers=layers, lr=lr, keypoint_weight=kw)
        t0 = time.perf_counter()
        result = adapt_keypoint_network(net, train, settings, fit_settings=fit)
        seconds = time.perf_counter() - t0
        s = keypoint_score(net, held, fit_settings=fit)
        rows.append({
            "config": f"layers={layers} lr={lr:g} keypoint_weight={kw:g}",
            "score": s["score"], "objective": s["objective"],
            "row_disagreement": s["row_disagreement"], "train_s": seconds,
            "diverged": result.diverged,
        })  # fmt: skip
        print(rows[-1], flush=True)
    best = min(rows, key=lambda r: r["score"])
    out = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_description(),
        "data": str(args.data),
        "frames": "0:38" if args.frames is None else f"{args.frames.start}:{args.frames.stop}",
        "pairs_adapting": len(train),
        "pairs_held_out": len(held),
        "calibration": calibration.to_dict(),
        "rows": rows,
        "best": best["config"],
    }
    print(f"best: {best['config']} ({best['score']:.4g})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
