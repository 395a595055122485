"""The analogues of the seed paper's Table 1 and Table 2 on a synthetic domain shift.

Source -> target: the model pretrained on the synthetic ``source`` domain (default: the
shipped model) is tested directly on a ``target`` test split, then adapted without labels on
an unlabelled ``target`` train split (binocular; monocular; and binocular with each of the
six losses removed in turn) and tested again. Every run goes through the same functions as
the ``adapt`` and ``eval`` commands.

Usage::

    python benchmarks/paper_tables.py --train runs/data/target_train \\
        --test runs/data/target_test --epochs 15 --out benchmarks/results/paper_tables

Writes ``<out>.json`` (every run's metrics, settings, wall time and the machine) and
``<out>.md`` (the two tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.train.adapt import LOSS_NAMES, AdaptSettings, adapt_crops
from stereo_hand_mesh.train.common import default_model_path, load_model
from stereo_hand_mesh.train.crops import load_crop_set
from stereo_hand_mesh.train.evaluate import evaluate_crops

PAPER = {  # seed 000, STB, mean joint error in mm
    "test_directly": 44.54,
    "binocular": 11.14,
    "monocular": 12.66,
    "no_photo": 25.36,
    "no_edge": 13.46,
    "no_laplacian": 11.36,
    "no_mask": 11.23,
    "no_chamfer": 11.37,
    "no_normal": 11.23,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="unlabelled target train")
    parser.add_argument("--test", type=Path, required=True, help="labelled target test")
    parser.add_argument("--init", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", nargs="+", default=None, help="subset of run names")
    parser.add_argument("--work", type=Path, default=Path("runs/paper_tables"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_tables"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init = args.init or default_model_path()
    _, init_ckpt = load_model(init, device)
    train = load_crop_set(args.train, ground_truth=False)
    test = load_crop_set(args.test, ground_truth=True)
    norm = init_ckpt.metadata.get("normalization")
    runs: dict[str, dict] = {}
    plan = [("binocular", "binocular", ()), ("monocular", "monocular", ())]
    plan += [(f"no_{name}", "binocular", (name,)) for name in LOSS_NAMES]
    wanted = set(args.runs) if args.runs else None

    def record(name: str, result: dict, extra: dict) -> None:
        m = result["metrics"]
        runs[name] = {
            "mean_joint_error_mm": m["mean_joint_error_mm"],
            "root_relative_error_mm": m["root_relative_error_mm"],
            "auc_20_50": m["auc_20_50"],
            "vertex_error_mm": result["vertex_error_mm"],
            "paper_mm": PAPER.get(name),
            **extra,
        }
        print(f"{name}: {m['mean_joint_error_mm']:.2f} mm", flush=True)

    for variant in ("binocular", "monocular"):
        name = "test_directly" if variant == "binocular" else "test_directly_monocular"
        model, _ = load_model(init, device)
        record(name, evaluate_crops(model, test, device, variant, normalization=norm), {})
    args.work.mkdir(parents=True, exist_ok=True)
    for name, variant, drop in plan:
        if wanted is not None and name not in wanted:
            continue
        model, _ = load_model(init, device)
        settings = AdaptSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            drop=drop,
            variant=variant,
            seed=args.seed,
        )
        t0 = time.monotonic()
        out = adapt_crops(
            train,
            model,
            init_ckpt.metadata,
            args.work / f"{name}.pt",
            settings,
            device,
            overwrite=True,
            progress=False,
        )
        wall = time.monotonic() - t0
        adapted, _ = load_model(out, device)
        result = evaluate_crops(adapted, test, device, variant, normalization=norm)
        record(name, result, {"variant": variant, "drop": list(drop), "adapt_wall_s": wall})

    base = runs["test_directly"]["mean_joint_error_mm"]
    for r in runs.values():
        r["change_vs_test_directly_pct"] = 100.0 * (r["mean_joint_error_mm"] - base) / base
    payload = {
        "benchmark": "paper_tables",
        "command": " ".join(["python", "benchmarks/paper_tables.py", *(argv or sys.argv[1:])]),
        "machine": machine_description() | {"device": str(device)},
        "init": str(init),
        "train": {"path": str(args.train), "pairs": len(train), "skipped": train.skipped},
        "test": {"path": str(args.test), "pairs": len(test), "skipped": test.skipped},
        "settings": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "steps": args.epochs * (len(train) // args.batch_size),
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


def markdown(payload: dict) -> str:
    """The two tables as markdown."""
    runs = payload["runs"]

    def row(label: str, name: str) -> str:
        r = runs.get(name)
        if r is None:
            return f"| {label} | not run | | | {PAPER.get(name, '')} |"
        change = r["change_vs_test_directly_pct"]
        return (
            f"| {label} | {r['mean_joint_error_mm']:.2f} | {change:+.0f}% "
            f"| {r['root_relative_error_mm']:.2f} | {PAPER.get(name, '')} |"
        )

    lines = [
        "Table 1 (synthetic source -> target; mean 3D joint error, mm)",
        "",
        "| model | ours (mm) | vs test-directly | root-relative (mm) | paper, STB (mm) |",
        "|---|---|---|---|---|",
        row("Test-directly", "test_directly"),
        row("Self-supervised (monocular)", "monocular"),
        row("Self-supervised (binocular)", "binocular"),
        "",
        "Table 2 (binocular, each loss removed in turn)",
        "",
        "| removed loss | ours (mm) | vs test-directly | root-relative (mm) | paper, STB (mm) |",
        "|---|---|---|---|---|",
        row("none", "binocular"),
    ]
    lines += [row(name, f"no_{name}") for name in LOSS_NAMES]
    s = payload["settings"]
    lines += [
        "",
        f"{payload['train']['pairs']} unlabelled target pairs, {s['epochs']} epochs "
        f"({s['steps']} steps of {s['batch_size']} pairs), lr {s['lr']}; "
        f"{payload['test']['pairs']} test pairs; {payload['machine']['cpu']}, "
        f"device {payload['machine']['device']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
