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
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.model.loading import default_model_path, load_model
from stereo_hand_mesh.train.adapt import LOSS_NAMES, AdaptSettings, adapt_crops
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
    parser.add_argument("--train", type=Path, help="unlabelled target train")
    parser.add_argument("--test", type=Path, help="labelled target test")
    parser.add_argument("--init", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=AdaptSettings.lr)
    parser.add_argument(
        "--mesh-unit-m", type=float, default=AdaptSettings.mesh_unit_m,
        help="length unit of the edge, Laplacian and Chamfer terms (default: metres)",
    )  # fmt: skip
    parser.add_argument(
        "--train-batchnorm", action="store_true",
        help="BatchNorm in train mode during adaptation (default: frozen)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="adapt seeds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", nargs="+", default=None, help="subset of run names")
    parser.add_argument("--work", type=Path, default=Path("runs/paper_tables"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_tables"))
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None,
        help="combine the per-seed results of earlier JSON outputs instead of running",
    )  # fmt: skip
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/paper_tables.py", *(argv or sys.argv[1:])])
    if args.merge:
        payload = merge([json.loads(p.read_text()) for p in args.merge], command)
    else:
        if args.train is None or args.test is None:
            parser.error("--train and --test are required (or --merge)")
        payload = run(args, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


def _summary(result: dict) -> dict:
    m = result["metrics"]
    return {
        "mean_joint_error_mm": m["mean_joint_error_mm"],
        "median_joint_error_mm": m["median_joint_error_mm"],
        "root_relative_error_mm": m["root_relative_error_mm"],
        "auc_20_50": m["auc_20_50"],
        "vertex_error_mm": result["vertex_error_mm"],
    }


def run(args: argparse.Namespace, command: str) -> dict:
    """Test directly, then adapt and test every planned run for every seed."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init = args.init or default_model_path()
    _, init_ckpt = load_model(init, device)
    train = load_crop_set(args.train, ground_truth=False)
    test = load_crop_set(args.test, ground_truth=True)
    norm = init_ckpt.metadata.get("normalization")
    plan = [("binocular", "binocular", ()), ("monocular", "monocular", ())]
    plan += [(f"no_{name}", "binocular", (name,)) for name in LOSS_NAMES]
    wanted = set(args.runs) if args.runs else None
    runs: dict[str, dict] = {}
    for variant in ("binocular", "monocular"):
        name = "test_directly" if variant == "binocular" else "test_directly_monocular"
        model, _ = load_model(init, device)
        result = evaluate_crops(model, test, device, variant, normalization=norm)
        runs[name] = {"variant": variant, "drop": [], "per_seed": {"-": _summary(result)}}
        print(f"{name}: {result['metrics']['mean_joint_error_mm']:.2f} mm", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name, variant, drop in plan:
            if wanted is not None and name not in wanted:
                continue
            model, _ = load_model(init, device)
            settings = AdaptSettings(
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, drop=drop,
                variant=variant, seed=seed, mesh_unit_m=args.mesh_unit_m,
                freeze_batchnorm=not args.train_batchnorm,
            )  # fmt: skip
            t0 = time.monotonic()
            out = adapt_crops(
                train, model, init_ckpt.metadata, args.work / f"{name}_seed{seed}.pt",
                settings, device, overwrite=True, progress=False,
            )  # fmt: skip
            wall = time.monotonic() - t0
            adapted, _ = load_model(out, device)
            result = evaluate_crops(adapted, test, device, variant, normalization=norm)
            entry = runs.setdefault(name, {"variant": variant, "drop": list(drop), "per_seed": {}})
            entry["per_seed"][str(seed)] = _summary(result) | {"adapt_wall_s": wall}
            print(f"{name} seed {seed}: {result['metrics']['mean_joint_error_mm']:.2f} mm "
                  f"({wall:.0f} s)", flush=True)  # fmt: skip
    payload = {
        "benchmark": "paper_tables",
        "commands": [command],
        "machine": machine_description() | {"device": str(device)},
        "init": str(init),
        "train": {"path": str(args.train), "pairs": len(train), "skipped": train.skipped},
        "test": {"path": str(args.test), "pairs": len(test), "skipped": test.skipped},
        "settings": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "mesh_unit_m": args.mesh_unit_m,
            "freeze_batchnorm": not args.train_batchnorm,
            "steps": args.epochs * (len(train) // args.batch_size),
        },
        "runs": runs,
    }
    return aggregate(payload)


def aggregate(payload: dict) -> dict:
    """Mean and spread over seeds of every run, and the change against test-directly."""
    for r in payload["runs"].values():
        errs = [v["mean_joint_error_mm"] for v in r["per_seed"].values()]
        rel = [v["root_relative_error_mm"] for v in r["per_seed"].values()]
        r["seeds"] = len(errs)
        r["mean_joint_error_mm"] = statistics.fmean(errs)
        r["std_joint_error_mm"] = statistics.pstdev(errs) if len(errs) > 1 else 0.0
        r["min_joint_error_mm"], r["max_joint_error_mm"] = min(errs), max(errs)
        r["root_relative_error_mm"] = statistics.fmean(rel)
        walls = [v["adapt_wall_s"] for v in r["per_seed"].values() if "adapt_wall_s" in v]
        if walls:
            r["adapt_wall_s_median"] = statistics.median(walls)
    base = payload["runs"]["test_directly"]["mean_joint_error_mm"]
    for name, r in payload["runs"].items():
        r["paper_mm"] = PAPER.get(name)
        r["change_vs_test_directly_pct"] = 100.0 * (r["mean_joint_error_mm"] - base) / base
    return payload


def _upgrade(payload: dict) -> dict:
    """Read a single-seed output of the first version of this script (no ``per_seed``)."""
    if all("per_seed" in r for r in payload["runs"].values()):
        return payload
    seed = str(payload["settings"].pop("seed", 0))
    keys = ("mean_joint_error_mm", "root_relative_error_mm", "auc_20_50", "vertex_error_mm")
    for name, r in payload["runs"].items():
        one = {k: r[k] for k in keys} | {"median_joint_error_mm": r.get("median_joint_error_mm")}
        if "adapt_wall_s" in r:
            one["adapt_wall_s"] = r["adapt_wall_s"]
        key = "-" if name.startswith("test_directly") else seed
        payload["runs"][name] = {
            "variant": r.get("variant", "monocular" if "monocular" in name else "binocular"),
            "drop": r.get("drop", []),
            "per_seed": {key: one},
        }
    payload["commands"] = [payload.pop("command")]
    return payload


def merge(payloads: list[dict], command: str) -> dict:
    """Combine the per-seed results of several outputs (same data, model and settings)."""
    payloads = [_upgrade(p) for p in payloads]
    out = json.loads(json.dumps(payloads[0]))
    out["commands"] = [c for p in payloads for c in p.get("commands", [p.get("command")])]
    out["commands"].append(command)
    for p in payloads[1:]:
        for key in ("init", "train", "test", "settings"):
            if p[key] != out[key]:
                raise SystemExit(f"cannot merge: {key} differs ({p[key]} vs {out[key]})")
        for name, r in p["runs"].items():
            out["runs"].setdefault(name, r)["per_seed"].update(r["per_seed"])
    return aggregate(out)


def _unit(metres: float) -> str:
    names = {1.0: "metres", 0.01: "centimetres", 0.001: "millimetres"}
    return names.get(metres, f"units of {metres} m")


def markdown(payload: dict) -> str:
    """The two tables as markdown."""
    runs = payload["runs"]

    def row(label: str, name: str) -> str:
        r = runs.get(name)
        if r is None:
            return f"| {label} | not run | | | {PAPER.get(name, '')} |"
        change = r["change_vs_test_directly_pct"]
        spread = (
            f" ({r['min_joint_error_mm']:.1f}-{r['max_joint_error_mm']:.1f})"
            if r["seeds"] > 1
            else ""
        )
        return (
            f"| {label} | {r['mean_joint_error_mm']:.2f}{spread} | {change:+.0f}% "
            f"| {r['root_relative_error_mm']:.2f} | {PAPER.get(name, '')} |"
        )

    lines = [
        "Table 1 (synthetic source -> target; mean 3D joint error, mm)",
        "",
        "| model | ours (mm), mean over seeds (min-max) | vs test-directly "
        "| root-relative (mm) | paper, STB (mm) |",
        "|---|---|---|---|---|",
        row("Test-directly", "test_directly"),
        row("Self-supervised (monocular)", "monocular"),
        row("Self-supervised (binocular)", "binocular"),
        "",
        "Table 2 (binocular, each loss removed in turn)",
        "",
        "| removed loss | ours (mm), mean over seeds (min-max) | vs test-directly "
        "| root-relative (mm) | paper, STB (mm) |",
        "|---|---|---|---|---|",
        row("none", "binocular"),
    ]
    lines += [row(name, f"no_{name}") for name in LOSS_NAMES]
    s = payload["settings"]
    lines += [
        "",
        f"{payload['train']['pairs']} unlabelled target pairs, {s['epochs']} epochs "
        f"({s['steps']} steps of {s['batch_size']} pairs), lr {s['lr']}, mesh terms in "
        f"{_unit(s.get('mesh_unit_m', 1.0))}; "
        f"{payload['test']['pairs']} test pairs; seeds: "
        f"{sorted({k for r in runs.values() for k in r['per_seed'] if k != '-'})}; "
        f"{payload['machine']['cpu']}, device {payload['machine']['device']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
