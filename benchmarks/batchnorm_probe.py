"""How much of the domain gap re-estimating BatchNorm statistics closes (AdaBN, no training).

The initial model is run in train mode, without gradients, over the unlabelled target pairs
for ``--passes`` passes in batches of ``--batch-size`` pairs (so only the BatchNorm running
statistics move, towards the target domain), then evaluated on the labelled target test
split like ``eval``. It tells whether adapt loses anything by freezing BatchNorm
(``AdaptSettings.freeze_batchnorm``).

Usage::

    python benchmarks/batchnorm_probe.py --train runs/data/target_train \\
        --test runs/data/target_test --json benchmarks/results/unit_probes/batchnorm.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.model.loading import default_model_path, load_model
from stereo_hand_mesh.train.common import predict_meshes
from stereo_hand_mesh.train.crops import load_crop_set
from stereo_hand_mesh.train.evaluate import evaluate_crops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="unlabelled target pairs")
    parser.add_argument("--test", type=Path, required=True, help="labelled target test")
    parser.add_argument("--init", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    init = args.init or default_model_path()
    model, ckpt = load_model(init, device)
    norm = ckpt.metadata.get("normalization")
    train = load_crop_set(args.train, ground_truth=False)
    test = load_crop_set(args.test, ground_truth=True)
    if args.passes < 1 or not 1 <= args.batch_size <= len(train):
        parser.error(
            f"expected --passes >= 1 and 1 <= --batch-size <= {len(train)} (the pairs of "
            f"--train); got {args.passes} and {args.batch_size}"
        )
    before = evaluate_crops(model, test, device, "binocular", normalization=norm)["metrics"]
    model.train()
    with torch.no_grad():
        for p in range(args.passes):
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(p))
            for s in range(0, len(train) - args.batch_size + 1, args.batch_size):
                rows = order[s : s + args.batch_size]
                predict_meshes(model, train.batch(rows, device), "binocular", normalization=norm)
    model.eval()
    after = evaluate_crops(model, test, device, "binocular", normalization=norm)["metrics"]
    payload = {
        "benchmark": "batchnorm_probe",
        "command": " ".join(["python", "benchmarks/batchnorm_probe.py", *(argv or sys.argv[1:])]),
        "machine": machine_description(),
        "init": str(init),
        "train_pairs": len(train),
        "test_pairs": len(test),
        "passes": args.passes,
        "batch_size": args.batch_size,
        "mean_joint_error_mm": {
            "source_statistics": before["mean_joint_error_mm"],
            "target_statistics": after["mean_joint_error_mm"],
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload["mean_joint_error_mm"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
