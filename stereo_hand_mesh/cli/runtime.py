"""The ``export``, ``infer`` and ``bench`` subcommands of ``stereo-hand-mesh``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stereo_hand_mesh.cli.bag_infer import add_bag_arguments, create_infer_pipeline, hand_records

__all__ = ["add_runtime_parsers"]


def add_runtime_parsers(sub: argparse._SubParsersAction) -> dict:
    """Register export and infer; return {name: runner}."""
    e = sub.add_parser("export", help="checkpoint -> ONNX (and a TensorRT engine)")
    e.add_argument("--model", type=Path, default=None, help="checkpoint (default: shipped)")
    e.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    e.add_argument("--engine", type=Path, default=None, help="also build this TensorRT engine")
    e.add_argument("--fp16", action="store_true", help="TensorRT engine with FP16")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument(
        "--half-weights", action="store_true",
        help="store weights as float16 in the file (computation stays float32)",
    )  # fmt: skip
    e.add_argument("--mano", type=Path, default=None, help="MANO file of MANO-topology models")

    i = sub.add_parser(
        "infer",
        help="one stereo pair from files, or every pair of a bag (--bag), through the pipeline",
    )
    i.add_argument("--left", type=Path, default=None, help="left rectified image")
    i.add_argument("--right", type=Path, default=None, help="right rectified image")
    i.add_argument("--left-info", type=Path, default=None, help="left camera_info YAML")
    i.add_argument("--right-info", type=Path, default=None, help="right camera_info YAML")
    i.add_argument(
        "--handedness", choices=("auto", "right", "left"), default="auto",
        help="auto: each hand's side from the network; right/left: only hands of that side",
    )  # fmt: skip
    i.add_argument("--max-hands", type=int, default=2, help="the most hands per pair (1-4)")
    i.add_argument(
        "--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto"
    )
    i.add_argument(
        "--model", type=Path, default=None,
        help="landmark network (.onnx, .npz for torch) or a legacy mesh model (.onnx/.pt); "
        "default: the shipped real-trained networks",
    )  # fmt: skip
    i.add_argument("--palm-model", type=Path, default=None, help="palm detector (.onnx/.npz)")
    i.add_argument(
        "--keypoint-variant", choices=("auto", "lite", "full"), default="auto",
        help="shipped networks: lite (CPU default) or full (GPU default)",
    )  # fmt: skip
    i.add_argument(
        "--joints", choices=("blended", "fitted", "triangulated"), default="blended",
        help="joints written: the fitted template's or the raw triangulated keypoints",
    )  # fmt: skip
    i.add_argument("--engine", type=Path, default=None, help="TensorRT engine cache")
    i.add_argument("--roi", type=float, nargs=3, default=None, metavar=("X0", "Y0", "SIDE"))
    i.add_argument("--min-confidence", type=float, default=0.3)
    i.add_argument(
        "--json", type=Path, default=None,
        help="write the result here (with --bag: the run's summary)",
    )  # fmt: skip
    i.add_argument("--overlay", type=Path, default=None, help="write an overlay PNG here")
    add_bag_arguments(i)

    b = sub.add_parser("bench", help="per-stage pipeline latency for each backend")
    b.add_argument("--json", type=Path, required=True, help="write results here (and .md)")
    b.add_argument(
        "--backends", nargs="+", default=["onnxruntime", "torch", "tensorrt"],
        help="backends to time (unavailable ones are reported as such)",
    )  # fmt: skip
    b.add_argument("--pairs", type=int, default=300, help="timed pairs per backend")
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--threads", type=int, default=0, help="CPU threads (0: defaults)")
    b.add_argument(
        "--keypoint-variant", choices=("lite", "full"), default="lite",
        help="shipped networks timed (lite: the CPU default)",
    )  # fmt: skip
    b.add_argument("--model", type=Path, default=None, help=".onnx or .pt (default: shipped)")
    b.add_argument(
        "--system", action="store_true",
        help="system benchmark: play --bag through hand_mesh_node in its own process",
    )  # fmt: skip
    b.add_argument(
        "--bag", type=Path, action="append", default=[],
        help="(--system) stereo bag from 'synth --bag'; repeat for several sizes",
    )  # fmt: skip
    b.add_argument(
        "--rates", type=float, nargs="+", default=[15, 30, 45, 60, 75, 90],
        help="(--system) input rates tried, pairs/s",
    )  # fmt: skip
    b.add_argument("--seconds", type=float, default=8.0, help="(--system) seconds per rate")
    b.add_argument(
        "--soak-seconds", type=float, default=0.0,
        help="(--system) soak at 30 Hz for this long (memory and drop curves)",
    )  # fmt: skip
    return {"export": run_export, "infer": run_infer, "bench": run_bench}


def run_bench(args: argparse.Namespace) -> int:

    from stereo_hand_mesh.cli.bench import bench_pipeline, markdown_table, write_results
    from stereo_hand_mesh.errors import ConfigError

    if args.system:
        return _run_system_bench(args)
    if args.pairs < 300:
        print(f"bench: note: {args.pairs} pairs (the reported figures use >= 300)")
    if args.pairs < 1:
        raise ConfigError(f"--pairs expected >= 1; got {args.pairs}")
    payload = bench_pipeline(
        args.backends,
        args.pairs,
        args.warmup,
        distinct=min(60, args.pairs + args.warmup),  # a smoke run renders only what it uses
        threads=args.threads,
        model=args.model,
        variant=args.keypoint_variant,
    )
    write_results(payload, args.json)
    print(markdown_table(payload), end="")
    print(f"bench: wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


def _run_system_bench(args: argparse.Namespace) -> int:
    import os

    from stereo_hand_mesh._paths import share_path

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault(
        "FASTDDS_DEFAULT_PROFILES_FILE", str(share_path("config", "fastdds_shm.xml"))
    )
    from stereo_hand_mesh.ros.system_bench import (
        SystemBenchSettings,
        markdown_table,
        run_system_bench,
        write_results,
    )

    settings = SystemBenchSettings(
        bags=tuple(args.bag),
        rates_hz=tuple(args.rates),
        seconds=args.seconds,
        soak_seconds=args.soak_seconds,
    )
    payload = run_system_bench(settings, Path("runs") / "system_bench")  # node logs
    write_results(payload, args.json)
    print(markdown_table(payload), end="")
    print(f"bench --system: wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.runtime.export import export_onnx

    out = export_onnx(args.model, args.onnx, args.opset, args.mano, args.half_weights)
    print(f"export: wrote {out}")
    if args.engine is not None:
        from stereo_hand_mesh.runtime.tensorrt_backend import TensorRTBackend

        TensorRTBackend(out, args.engine, args.fp16, force_engine_update=True)
        print(f"export: wrote {args.engine}")
    return 0


def run_infer(args: argparse.Namespace) -> int:
    if args.bag is not None:
        from stereo_hand_mesh.cli.bag_infer import run_bag_infer

        return run_bag_infer(args)
    import numpy as np

    from stereo_hand_mesh.data.camera_info_yaml import read_camera_info_yaml
    from stereo_hand_mesh.data.image_io import read_image_rgb, write_image_png
    from stereo_hand_mesh.errors import CameraInfoError, ShapeError
    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.hand.joints import JOINT_NAMES
    from stereo_hand_mesh.pipeline.overlay import draw_overlay

    _check_single_pair_args(args)
    choice = create_infer_pipeline(args, smoothing=False)  # bad options fail before any file
    left, right = read_image_rgb(args.left), read_image_rgb(args.right)
    if left.shape != right.shape:
        raise ShapeError(
            f"--right image expected {left.shape[1]}x{left.shape[0]} (the --left size); got "
            f"{right.shape[1]}x{right.shape[0]}"
        )
    infos = []
    for flag, path in (("--left-info", args.left_info), ("--right-info", args.right_info)):
        info = read_camera_info_yaml(path)
        try:
            info.validate()
        except CameraInfoError as err:
            raise CameraInfoError(f"{flag} {path}: {err}") from None
        infos.append(info)
    try:
        rig = StereoRig.from_camera_info(*infos)
    except CameraInfoError as err:
        raise CameraInfoError(f"{args.left_info} and {args.right_info}: {err}") from None
    hands = choice.pipeline.process_hands(
        left, right, rig, roi=tuple(args.roi) if args.roi else None
    )
    est = hands.primary  # the top-level fields: the most confident hand (``hands``: all)

    def listed(value):
        return None if value is None else np.asarray(value).tolist()

    result = {
        "found": est.found,
        "reason": est.reason,
        "confidence": est.confidence,
        "backend": choice.pipeline.backend.name,
        "backend_reason": choice.reason,
        "model": str(args.model) if args.model else choice.model,
        "model_kind": choice.kind,
        "handedness": args.handedness,
        "max_hands": args.max_hands,
        "hand_id": int(est.hand_id),
        "hand_side": est.handedness,
        "frame": "left optical frame, metres",
        "joint_names": list(JOINT_NAMES),
        "published_joints": args.joints,
        "joints": listed(est.joints),
        "joint_rotations": listed(est.joint_rotations),
        "joint_confidence": listed(est.joint_confidence),
        "triangulated_joints": listed(est.triangulated_joints),
        "fitted_joints": listed(est.fitted_joints),
        "keypoints_px": listed(est.keypoints),
        "presence": listed(est.presence),
        "vertices": listed(est.vertices),
        "vertex_confidence": listed(est.vertex_confidence),
        "timings_ms": est.timings_ms,
        **hand_records(hands, with_vertices=True),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result) + "\n")
    if args.overlay is not None:
        write_image_png(args.overlay, draw_overlay(left, rig, hands))
    status = hands.summary()
    print(f"infer: {choice.reason}; {status}; wrote {args.json}")
    return 0  # "no hand" is a result (in the JSON), not an error


def _check_single_pair_args(args: argparse.Namespace) -> None:
    """The single-pair ``infer`` needs its four files and --json, and no bag options."""
    from stereo_hand_mesh.errors import ConfigError

    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("left", "right", "left_info", "right_info", "json")
        if getattr(args, name) is None
    ]
    if missing:
        raise ConfigError(
            f"infer expected --left, --right, --left-info, --right-info and --json (one pair) "
            f"or --bag (a recording); missing {missing}"
        )
    bag_only = [
        flag
        for flag, given in (
            ("--jsonl", args.jsonl is not None),
            ("--video", args.video is not None),
            ("--rectify", args.rectify),
        )
        if given
    ]
    if bag_only:
        raise ConfigError(f"infer: {bag_only} expected --bag; got single-pair files")
