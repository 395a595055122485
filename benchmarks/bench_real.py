"""Benchmark: the product on a real stereo folder, beside the MediaPipe peer on the same pairs.

Our product (the pipeline ``stereo-hand-mesh eval --data`` builds,
:func:`stereo_hand_mesh.cli.train.build_product_pipeline`) plays the folder through
:func:`stereo_hand_mesh.train.real_eval.evaluate_real` twice: static (a cold start on every
pair, like the peer's static image mode) and tracking (consecutive frames in order). When the
peer's interpreter exists, the peer tool (``../shared/tools/peer_mediapipe.py``: MediaPipe
Hands on both views, landmarks triangulated) runs on the same folder in the same run and its
figures go beside ours, with the machine description::

    .venv/bin/python benchmarks/bench_real.py --data ../shared/realdata/tabletop_a \\
        --json benchmarks/results/real_tabletop_a.json \\
        --peer-python ~/.cache/peer-mediapipe/bin/python

Both score the frames whose hand is wholly inside both images (``gt.npz`` ``inside``), each
frame's error being the mean over its labelled joints; mean and median are over the frames
where a hand was found. The peer's ms per pair include decoding both PNGs; ours do not (our
decode time is given beside, ``decode_ms_median``). The real data is for evaluation only
(``../shared/realdata/README.md``). Without the folder the script prints
``skipped: ... not found`` and exits 0 (CI does not have it). ``--frames START:STOP`` plays
and scores only those positions of the folder (e.g. ``38:``, the held-out half of a label-free
adaptation or calibration on ``0:38``); the peer, which scores whole folders, is then skipped.

Writes the JSON and a markdown table beside it (``.md``).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.cli.options import add_frames_argument
from stereo_hand_mesh.cli.train import build_product_pipeline
from stereo_hand_mesh.data.realdata import RealStereoFolder
from stereo_hand_mesh.train.real_eval import evaluate_real

REPO = Path(__file__).resolve().parents[1]

#: Seconds the peer may take on a folder (it needs about 60 ms per pair on 2 cores).
PEER_TIMEOUT_S = 900


def run_peer(python: Path, script: Path, data: Path) -> dict[str, Any]:
    """The peer tool's figures on ``data``, or why there are none (``skipped`` / ``error``)."""
    if not python.is_file():
        return {"skipped": f"peer interpreter {python} not found (set-up: see {script.name})"}
    if not script.is_file():
        return {"skipped": f"peer tool {script} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        command = [str(python), str(script), str(data), "--json", str(out)]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"peer timed out after {PEER_TIMEOUT_S} s", "command": command}
        wall_s = time.monotonic() - t0
        if proc.returncode != 0 or not out.is_file():
            return {
                "error": f"peer exited with {proc.returncode}",
                "stderr_tail": proc.stderr[-2000:],
                "command": command,
            }
        result = json.loads(out.read_text())
    return {**result, "command": command, "wall_s": wall_s}


def decode_ms_median(folder: RealStereoFolder, frames: list[int]) -> float | None:
    """Median wall time of reading and decoding both images of a pair, ms."""
    times = []
    for frame in frames:
        t0 = time.perf_counter()
        folder.read_pair(frame)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times) if times else None


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    rows = [
        "| system | mode | frames | found | mean mm | median mm | root-rel. mm | AUC 20-50 "
        "| ms per pair (median) | p95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in result["ours"].items():
        lat = r["latency_ms"]
        rows.append(
            f"| ours ({result['product']['backend']}) | {mode} | {r['frames_scored']} | "
            f"{r['found']} | {_fmt(r['mean_joint_error_mm'])} | "
            f"{_fmt(r['median_joint_error_mm'])} | {_fmt(r['root_relative_error_mm'])} | "
            f"{_fmt(r['auc_20_50'], '.3f')} | {_fmt(lat['median'])} | {_fmt(lat['p95'])} |"
        )
        for name, alt in r.get("alternative_joints", {}).items():
            rows.append(
                f"| ours, {name.replace('_', ' ')} | {mode} | {r['frames_scored']} | "
                f"{alt['frames_with_error']} | {_fmt(alt['mean_joint_error_mm'])} | "
                f"{_fmt(alt['median_joint_error_mm'])} | "
                f"{_fmt(alt['root_relative_error_mm'])} | - | - | - |"
            )
    peer = result["peer"]
    if "found" in peer:
        rows.append(
            f"| peer (MediaPipe Hands) | static | {peer['frames']} | {peer['found']} | "
            f"{_fmt(peer['mean_joint_error_mm'])} | {_fmt(peer['median_joint_error_mm'])} | - "
            f"| - | {_fmt(peer['ms_per_pair_median'])} | - |"
        )
    else:
        rows.append(f"| peer | - | {peer.get('skipped') or peer.get('error')} |||||||||")
    notes = [
        "",
        f"Data: {result['data']}; machine: {result['machine']['cpu']} "
        f"({result['machine']['usable_cores']} cores). The peer's ms include decoding both PNGs;"
        f" ours do not (decoding: {_fmt(result['decode_ms_median'])} ms per pair).",
    ]
    return "\n".join(rows + notes) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "realdata" / "tabletop_a"
    )
    parser.add_argument("--json", type=Path, default=None, help="write results here (and .md)")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=Path.home() / ".cache" / "peer-mediapipe" / "bin" / "python",
        help="the peer's interpreter (its own venv); the peer is skipped when it is absent",
    )
    parser.add_argument(
        "--peer-script",
        type=Path,
        default=REPO.parent / "shared" / "tools" / "peer_mediapipe.py",
    )
    parser.add_argument(
        "--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="landmark network (default: the shipped ones)"
    )
    parser.add_argument("--palm-model", type=Path, default=None, help="palm detector")
    parser.add_argument("--keypoint-variant", choices=("auto", "lite", "full"), default="auto")
    parser.add_argument(
        "--joints", choices=("blended", "fitted", "triangulated"), default="blended"
    )
    parser.add_argument("--handedness", choices=("auto", "right", "left"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the recording")
    parser.add_argument("--no-peer", action="store_true", help="do not run the peer")
    add_frames_argument(parser)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"bench_real: skipped: real data folder {args.data} not found")
        return 0

    folder = RealStereoFolder.open(args.data)
    pipeline, product = build_product_pipeline(args)
    ours = {}
    for mode in ("static", "tracking"):
        ours[mode] = evaluate_real(
            folder,
            pipeline,
            tracking=mode == "tracking",
            frame_rate_hz=args.fps,
            frames=args.frames,
        )
    scored = [r["frame"] for r in ours["static"]["per_frame"]]
    if args.no_peer:
        peer: dict[str, Any] = {"skipped": "--no-peer"}
    elif args.frames is not None:
        peer = {"skipped": "--frames: the peer tool scores the whole folder, not a selection"}
    else:
        peer = run_peer(args.peer_python.expanduser(), args.peer_script, args.data)
    result: dict[str, Any] = {
        "machine": machine_description(),
        "command": "benchmarks/bench_real.py " + " ".join(sys.argv[1:]),
        "data": str(args.data),
        "product": {**product, "handedness": args.handedness, "fps": args.fps},
        "decode_ms_median": decode_ms_median(folder, scored),
        "ours": ours,
        "peer": peer,
    }
    table = markdown(result)
    print(table, end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(table)
        print(f"bench_real: wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
