"""``stereo-hand-mesh demo``: the demo graph without launch_ros, and a monitor.

Starts ``stereo_camera_sim`` (two hands: a person's right and left hand, each with its own
motion) and ``hand_mesh_node`` (``handedness: auto``: each hand's side read from the image)
as processes with the same parameter files ``demo.launch.py`` gives them
(config/stereo_camera_sim.yaml or config/hand_mesh.yaml, then config/demo.yaml), waits for the
first mesh, then prints once a second the rate of meshed pairs, the stamp-to-arrival latency
and, per side, the hands meshed and their mean joint error against that side's ground truth
(``hand/right/joints`` against ``sim/gt_joints``, ``hand/left/joints`` against
``sim/gt_joints_left``). At the end it writes overlay PNGs and ``summary.json`` into ``--out``
and says where they are.

The demo is one machine: unless already set, its processes get
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the shared-memory Fast DDS profile
(config/fastdds_shm.xml). RViz is not started here (no rviz2 in a PyPI-only venv); with a ROS
installation, ``ros2 launch stereo_hand_mesh demo.launch.py`` shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_demo_parser", "run_demo"]


def add_demo_parser(sub: argparse._SubParsersAction) -> dict:
    """Register ``demo``; return {name: runner}."""
    p = sub.add_parser(
        "demo",
        help="simulated stereo camera + hand_mesh_node + monitor (rate, latency, error)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--seconds", type=float, default=20.0, help="monitoring time (default 20)")
    p.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)"
    )
    p.add_argument(
        "--startup-timeout", type=float, default=180.0, help="wait this long for a first mesh"
    )
    p.add_argument("--overlays", type=int, default=5, help="overlay PNGs to write (default 5)")
    return {"demo": run_demo}


def _environment() -> dict[str, str]:
    from stereo_hand_mesh._paths import share_path

    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(share_path("config", "fastdds_shm.xml")))
    return env


def _start(name: str, configs: list[Path], out: Path, env: dict[str, str]) -> subprocess.Popen:
    from stereo_hand_mesh._paths import executable_path

    args = [str(executable_path(name)), "--ros-args"]
    for config in configs:
        args += ["--params-file", str(config)]
    log = open(out / f"{name}.log", "w")  # noqa: SIM115 (the child owns it; closed at exit)
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _fmt(value: float | None, spec: str) -> str:
    return "   -  " if value is None else format(value, spec)


def run_demo(args: argparse.Namespace) -> int:
    env = _environment()
    os.environ.update(
        {k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
    )
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from stereo_hand_mesh._paths import share_path
    from stereo_hand_mesh.data.image_io import write_image_png
    from stereo_hand_mesh.ros.image_conversion import image_msg_to_rgb8
    from stereo_hand_mesh.ros.monitor import MonitorNode

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    config = share_path("config")
    demo_yaml = config / "demo.yaml"
    print(
        f"demo: ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID', '0')}, discovery "
        f"{env['ROS_AUTOMATIC_DISCOVERY_RANGE']}; logs in {out}/"
    )
    procs = [
        _start("stereo_camera_sim", [config / "stereo_camera_sim.yaml", demo_yaml], out, env),
        _start("hand_mesh_node", [config / "hand_mesh.yaml", demo_yaml], out, env),
    ]
    rclpy.init()
    monitor = MonitorNode()
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)

    code = 0
    summary: dict[str, Any] = {}
    try:
        print("demo: waiting for the simulated camera (it pre-renders its motion loop) ...")
        deadline = time.monotonic() + args.startup_timeout
        while not monitor.meshes and time.monotonic() < deadline:
            spin(0.2)
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                names = ", ".join(Path(p.args[0]).name for p in dead)
                print(
                    f"demo: error: {names} exited early; see the logs in {out}/", file=sys.stderr
                )
                return 1
        if not monitor.meshes:
            print(
                f"demo: error: no mesh within {args.startup_timeout:.0f} s; see {out}/",
                file=sys.stderr,
            )
            return 1
        print(
            " time   rate(Hz)  latency p50(ms)  right: meshed  error(mm)  left: meshed  "
            "error(mm)  status"
        )
        start = time.monotonic()
        overlays: list[Path] = []
        every = args.seconds / max(args.overlays, 1)
        next_overlay = start + every / 2
        while time.monotonic() - start < args.seconds:
            tick = time.monotonic()
            spin(1.0)
            s = monitor.summary(tick).as_dict()
            right, left = s["sides"]["right"], s["sides"]["left"]
            print(
                f"{time.monotonic() - start:5.1f}   {s['rate_hz']:6.1f}    "
                f"{_fmt(s['latency_p50_ms'], '10.1f')}       "
                f"{right['meshes']:6d}  {_fmt(right['joint_error_mean_mm'], '9.1f')}     "
                f"{left['meshes']:6d}  {_fmt(left['joint_error_mean_mm'], '9.1f')}    "
                f"{monitor.last_status}",
                flush=True,
            )
            if monitor.last_overlay is not None and time.monotonic() >= next_overlay:
                path = out / f"overlay_{len(overlays):02d}.png"
                write_image_png(path, image_msg_to_rgb8(monitor.last_overlay))
                overlays.append(path)
                next_overlay += every
        summary = monitor.summary(start).as_dict()
        summary.update(
            {
                "node_diagnostics": monitor.last_diagnostics,
                "overlays": [str(p) for p in overlays],
                "configs": [
                    str(config / name)
                    for name in ("stereo_camera_sim.yaml", "hand_mesh.yaml", "demo.yaml")
                ],
            }
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        code = 0 if summary["meshes"] > 0 else 1
    finally:
        executor.remove_node(monitor)
        monitor.destroy_node()
        rclpy.try_shutdown()
        _stop(procs)
    print(
        f"demo: {summary.get('meshes', 0)} meshed pairs of {summary.get('camera_pairs', 0)} in "
        f"{summary.get('seconds', 0):.0f} s ({summary.get('rate_hz', 0):.1f} Hz), latency p50 "
        f"{_fmt(summary.get('latency_p50_ms'), '.1f')} ms, mean joint error "
        f"{_fmt(summary.get('joint_error_mean_mm'), '.1f')} mm"
    )
    for side, s in summary.get("sides", {}).items():
        share = s["mesh_fraction"]
        print(
            f"demo: {side} hand: meshed in {s['meshes']} of {s['hands_in_view']} pairs"
            f"{'' if share is None else f' ({100 * share:.0f}%)'}, mean joint error "
            f"{_fmt(s['joint_error_mean_mm'], '.1f')} mm"
        )
    print(
        f"demo: wrote {out / 'summary.json'} and {len(summary.get('overlays', []))} overlay "
        f"PNGs in {out}/"
    )
    return code
