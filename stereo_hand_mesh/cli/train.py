"""The ``pretrain``, ``adapt`` and ``eval`` subcommands of ``stereo-hand-mesh``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stereo_hand_mesh.cli.options import add_frames_argument

# Names only (no torch): the choices of --layers.
LAYER_CHOICES = ("all", "late", "head")

__all__ = ["add_training_parsers", "build_product_pipeline"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mano",
        type=Path,
        default=None,
        help="your MANO_RIGHT.pkl: needed for FreiHAND data and MANO-topology models",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--size", type=int, default=128, help="crop side, pixels (default 128)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_training_parsers(sub: argparse._SubParsersAction) -> dict:
    """Register pretrain, adapt and eval; return {name: runner}."""
    p = sub.add_parser("pretrain", help="supervised pretraining on labelled stereo pairs")
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="labelled stereo split (synth command), or a FreiHAND root (with --mano)",
    )
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (resumable)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32, help="stereo pairs per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--copies", type=int, default=2, help="jittered crops per pair")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binocular-only", action="store_true", help="no monocular depth head")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run at --out")
    _common(p)

    a = sub.add_parser(
        "adapt",
        help="self-supervised stereo adaptation (no labels): --out X.onnx adapts the "
        "product's keypoint network; --out X.pt the legacy mesh network (paper experiment)",
    )
    a.add_argument(
        "--data",
        required=True,
        type=Path,
        help="unlabelled split, rosbag2 bag, recording, or real stereo folder (its gt.npz, if "
        "any, is never read)",
    )
    a.add_argument(
        "--out",
        required=True,
        type=Path,
        help="X.onnx: the adapted keypoint network (+ X.npz, X.csv log, X.json report); "
        "X.pt: a legacy checkpoint (resumable)",
    )
    a.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start model (default: the shipped one; for .onnx its .npz must sit beside it)",
    )
    a.add_argument(
        "--drop",
        nargs="+",
        default=[],
        metavar="LOSS",
        help="losses to remove: photo edge laplacian mask chamfer normal",
    )
    a.add_argument("--variant", choices=("binocular", "monocular"), default="binocular")
    a.add_argument("--epochs", type=int, default=None, help="default: the time budget's")
    a.add_argument("--batch-size", type=int, default=8, help="stereo pairs per step")
    a.add_argument(
        "--lr",
        type=float,
        default=None,
        help="default: KeypointAdaptSettings.lr (keypoint network), AdaptSettings.lr (legacy)",
    )
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--overwrite", action="store_true", help="replace a finished run at --out")
    add_frames_argument(a)
    k = a.add_argument_group("keypoint network (--out X.onnx)")
    k.add_argument("--layers", choices=LAYER_CHOICES, default=None, help="which weights adapt")
    k.add_argument("--keypoint-weight", type=float, default=None, help="pseudo-label term")
    k.add_argument("--epipolar-weight", type=float, default=None, help="row-agreement term")
    k.add_argument("--time-budget", type=float, default=None, help="stop training after S s")
    k.add_argument(
        "--validation-data",
        type=Path,
        default=None,
        help="held-out unlabelled pairs (default: the last --validation-fraction of --data)",
    )
    k.add_argument("--validation-fraction", type=float, default=0.25)
    k.add_argument(
        "--no-calibrate", action="store_true", help="no per-user hand shape calibration"
    )
    k.add_argument("--keypoint-variant", choices=("lite", "full"), default="lite")
    k.add_argument(
        "--handedness", choices=("right", "left", "auto"), default="right",
        help="the user's hand (auto: the side most recorded pairs show)",
    )  # fmt: skip
    _common(a)

    e = sub.add_parser(
        "eval",
        help="3D joint metrics of a model on a labelled split, or of the product pipeline on "
        "a real stereo folder",
    )
    e.add_argument(
        "--data",
        required=True,
        type=Path,
        help="labelled split or bag with gt, or a real stereo folder (left/, right/, "
        "left.yaml, right.yaml, optional gt.npz): played through the product pipeline",
    )
    e.add_argument(
        "--model",
        type=Path,
        default=None,
        help="checkpoint (default: shipped); for a real folder the landmark network "
        "(.onnx, .npz for torch) or a legacy mesh model (.onnx/.pt)",
    )
    e.add_argument(
        "--palm-model", type=Path, default=None, help="(real folder) palm detector (.onnx/.npz)"
    )
    e.add_argument(
        "--keypoint-variant",
        choices=("auto", "lite", "full"),
        default="auto",
        help="(real folder) shipped networks: lite (CPU default) or full (GPU default)",
    )
    e.add_argument(
        "--joints",
        choices=("blended", "fitted", "triangulated"),
        default="blended",
        help="(real folder) joints scored: the fitted template's or the triangulated keypoints",
    )
    e.add_argument(
        "--backend",
        choices=("auto", "tensorrt", "onnxruntime", "torch"),
        default="auto",
        help="(real folder) inference backend",
    )
    e.add_argument(
        "--handedness", choices=("auto", "right", "left"), default="auto",
        help="(real folder) auto: each hand's side from the network; right/left: that side",
    )  # fmt: skip
    e.add_argument("--max-hands", type=int, default=2, help="(real folder) most hands per pair")
    e.add_argument(
        "--static",
        action="store_true",
        help="(real folder) every pair a cold start, no tracking between pairs",
    )
    e.add_argument(
        "--fps", type=float, default=30.0, help="(real folder) frame rate of the recording"
    )
    e.add_argument(
        "--all-frames",
        action="store_true",
        help="(real folder) score every labelled frame, not only those with the hand inside",
    )
    e.add_argument("--variant", choices=("binocular", "monocular"), default="binocular")
    e.add_argument("--json", type=Path, default=None, help="write the metrics here")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument(
        "--self-supervised",
        action="store_true",
        help="no labels: the stereo self-supervised loss (eq. 10 without the edge term)",
    )
    add_frames_argument(e)
    _common(e)
    return {"pretrain": run_pretrain, "adapt": run_adapt, "eval": run_eval}


def _setup(args: argparse.Namespace):
    import torch

    from stereo_hand_mesh.train.common import resolve_device

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def _command_line() -> str:
    return " ".join(["stereo-hand-mesh", *sys.argv[1:]])


def _is_freihand(path: Path) -> bool:
    return (path / "training_xyz.json").is_file() and (path / "training" / "rgb").is_dir()


def run_pretrain(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.errors import ConfigError
    from stereo_hand_mesh.train.common import hand_topology
    from stereo_hand_mesh.train.crops import build_monocular_crop_set, load_crop_set
    from stereo_hand_mesh.train.pretrain import PretrainSettings, pretrain

    device = _setup(args)
    settings = PretrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    t0 = time.monotonic()
    hand_model, topology = "template", hand_topology()
    if _is_freihand(args.data):
        if args.mano is None:
            raise ConfigError(
                f"--data {args.data} is FreiHAND (MANO vertices); expected --mano "
                "MANO_RIGHT.pkl for the topology; got none"
            )
        from stereo_hand_mesh.data.freihand import FreiHANDReader

        hand_model, topology = "mano", hand_topology(args.mano)
        reader = FreiHANDReader(args.data, "training")
        crops = build_monocular_crop_set(
            iter(reader),
            args.size,
            copies=args.copies,
            jitter=0.08,
            seed=args.seed,
            limit=args.limit,
        )
        if crops.vertices.shape[1] != topology.num_vertices:
            raise ConfigError(
                f"FreiHAND vertices expected {topology.num_vertices} per hand (the MANO "
                f"file); got {crops.vertices.shape[1]}"
            )
        if args.binocular_only:
            raise ConfigError("FreiHAND is monocular: --binocular-only cannot be used with it")
    else:
        crops = load_crop_set(
            args.data,
            args.size,
            ground_truth=True,
            limit=args.limit,
            box_source="ground_truth",
            copies=args.copies,
            jitter=0.08,
            seed=args.seed,
        )
    print(f"pretrain: {len(crops)} crops from {args.data} in {time.monotonic() - t0:.1f} s")
    provenance = {"command": _command_line(), "data": str(args.data), "device": str(device)}
    pretrain(
        crops,
        args.out,
        settings,
        device,
        monocular_head=not args.binocular_only,
        overwrite=args.overwrite,
        provenance=provenance,
        progress=not args.quiet,
        topology=topology,
        hand_model=hand_model,
    )
    print(f"pretrain: wrote {args.out} ({time.monotonic() - t0:.0f} s)")
    return 0


def _run_adapt_keypoints(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.train.adapt import AdaptSettings
    from stereo_hand_mesh.train.adapt_keypoints import adapt_keypoints

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    settings = AdaptSettings.from_cli(args)
    report = adapt_keypoints(
        args.data,
        args.out,
        settings.keypoints,
        variant=settings.variant,
        weights=settings.effective_weights,
        batch_size=settings.batch_size,
        seed=settings.seed,
        init=args.init,
        keypoint_variant=args.keypoint_variant,
        frames=args.frames,
        validation_data=args.validation_data,
        validation_fraction=args.validation_fraction,
        calibrate=not args.no_calibrate,
        handedness=args.handedness,
        threads=args.threads,
        limit=args.limit,
        progress=not args.quiet,
        provenance={"command": _command_line()},
        overwrite=args.overwrite,
    )
    print(f"adapt: wrote {report.model} ({report.details['seconds']['total']:.0f} s)")
    print(f"adapt: {report.decision}")
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.errors import ConfigError

    if args.out.suffix == ".onnx":
        return _run_adapt_keypoints(args)
    if args.out.suffix != ".pt":
        raise ConfigError(
            f"adapt --out expected X.onnx (keypoint network) or X.pt (legacy mesh network); "
            f"got {args.out}"
        )
    if args.frames is not None:
        raise ConfigError("adapt --frames expected --out X.onnx (the keypoint network)")
    from stereo_hand_mesh.train.adapt import AdaptSettings, adapt

    device = _setup(args)
    settings = AdaptSettings.from_cli(args)
    t0 = time.monotonic()
    adapt(
        args.data,
        args.out,
        settings,
        device,
        init=args.init,
        overwrite=args.overwrite,
        progress=not args.quiet,
        limit=args.limit,
        size=args.size,
        provenance={"command": _command_line(), "data": str(args.data), "device": str(device)},
        mano_path=args.mano,
    )
    print(f"adapt: wrote {args.out} ({time.monotonic() - t0:.0f} s)")
    return 0


def build_product_pipeline(args: argparse.Namespace) -> tuple[object, dict[str, str]]:
    """The product's per-pair pipeline as ``eval --data <real folder>`` and the real-data
    benchmark run it (the one place to change when the pipeline changes).

    Args:
        args: ``backend``, ``model`` (None: the shipped default), ``handedness`` and
            ``threads`` (ONNX Runtime CPU threads, 0: its default).

    Returns:
        (pipeline with ``reset()`` and ``process(left, right, rig, stamp_s)``, description:
        ``backend``, ``backend_reason``, ``model``).
    """
    from stereo_hand_mesh.pipeline import PipelineSettings
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    settings = PipelineSettings(
        handedness=args.handedness,
        max_hands=getattr(args, "max_hands", 2),
        published_joints=getattr(args, "joints", "blended"),
        smoothing=not getattr(args, "static", False),
    )
    choice = create_pipeline(
        settings,
        args.backend,
        args.model,
        getattr(args, "palm_model", None),
        getattr(args, "keypoint_variant", "auto"),
        intra_op_threads=args.threads,
    )
    return choice.pipeline, {
        "backend": choice.pipeline.backend.name,
        "backend_reason": choice.reason,
        "model": str(args.model) if args.model else choice.model,
        "model_kind": choice.kind,
        "published_joints": settings.published_joints,
    }


def _run_real_eval(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.data.realdata import RealStereoFolder
    from stereo_hand_mesh.train.real_eval import evaluate_real

    folder = RealStereoFolder.open(args.data)
    pipeline, described = build_product_pipeline(args)
    result = evaluate_real(
        folder,
        pipeline,
        only_inside=not args.all_frames,
        progress=not args.quiet,
        tracking=not args.static,
        frame_rate_hz=args.fps,
        limit=args.limit,
        frames=args.frames,
    )
    result = {"command": _command_line(), **described, "handedness": args.handedness, **result}
    mm = result["mean_joint_error_mm"]
    errors = (
        f", mean {mm:.1f} mm, median {result['median_joint_error_mm']:.1f} mm"
        if mm is not None
        else ""
    )
    ms = result["latency_ms"]["median"]
    print(
        f"eval: {args.data} ({result['mode']}, {described['backend']}): found "
        f"{result['found']}/{result['hands_scored']}{errors}, "
        f"{'-' if ms is None else f'{ms:.1f}'} ms per pair (median)"
    )
    for side, figures in result["per_side"].items():
        side_mm = figures["mean_joint_error_mm"]
        print(
            f"eval: {side} hands: found {figures['found']}/{figures['scored']}"
            + ("" if side_mm is None else f", mean {side_mm:.1f} mm")
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.data.realdata import is_real_stereo_folder

    if is_real_stereo_folder(args.data) and not args.self_supervised:
        return _run_real_eval(args)  # no torch unless the backend is torch
    from stereo_hand_mesh.train.evaluate import evaluate

    device = _setup(args)
    if args.self_supervised:
        from stereo_hand_mesh.train.validate import self_supervised_score

        result = self_supervised_score(
            args.data, args.model, device, args.batch_size, args.size, args.limit
        )
        print(f"eval: {result['pairs']} pairs, self-supervised score {result['score']:.5f}")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    result = evaluate(
        args.data,
        args.model,
        device,
        variant=args.variant,
        batch_size=args.batch_size,
        limit=args.limit,
        size=args.size,
        progress=not args.quiet,
        mano_path=args.mano,
    )
    m = result["metrics"]
    print(
        f"eval: {m['count']} pairs, mean joint error {m['mean_joint_error_mm']:.2f} mm, "
        f"root-relative {m['root_relative_error_mm']:.2f} mm, AUC 20-50 {m['auc_20_50']:.3f}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
