#!/usr/bin/env python3
"""Pairs delivered to hand_mesh_node by its input QoS and the Fast DDS profile.

For each combination of the node's input reliability (best effort, reliable; set with the
standard QoS override parameters ``qos_overrides./<topic>.subscription.reliability``) and the
middleware profile (Fast DDS's defaults, i.e. FASTDDS_DEFAULT_PROFILES_FILE unset, or the
project's shared-memory profile ``config/fastdds_shm.xml``), the benchmark starts
``hand_mesh_node`` (its default settings otherwise) and, in a separate process, a publisher of
640x480 rgb8 stereo pairs at 30 Hz that publishes reliably, keep last 10 (as image_transport
and most camera drivers do). The publisher counts the pairs it sent; the node's
``/diagnostics`` (``pairs_synchronized``) counts the pairs that reached it whole (all four
messages, paired). Delivered = synchronized / sent.

    ROS_DOMAIN_ID=77 .venv/bin/python benchmarks/bench_input_qos.py --rounds 3 \\
        --json benchmarks/results/input_qos.json

Every process runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of its
own run (from ``--domain``, one per run). Writes JSON and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
PROFILE = REPO / "config" / "fastdds_shm.xml"
INPUTS = ("left/image_rect", "left/camera_info", "right/image_rect", "right/camera_info")


def _publish(args: argparse.Namespace) -> int:
    """The publisher process: send ``--pairs`` pairs at ``--rate`` Hz, then report what the
    node's diagnostics say it synchronized (one JSON line on stdout)."""
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.data.sample import StereoSample
    from stereo_hand_mesh.ros.player import PairPublisher, pair_messages

    li, ri = STB_BUMBLEBEE2.camera_infos()
    views = np.load(args.samples)
    samples = [
        StereoSample(views["left"][i], views["right"][i], li, ri, index=i)
        for i in range(len(views["left"]))
    ]
    rclpy.init()
    node = rclpy.create_node("bench_input_qos_publisher")
    pub = PairPublisher(node, reliable=True)
    last: dict[str, str] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "hand mesh" in status.name:
                last.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    deadline = time.monotonic() + 90.0
    while pub.subscribers() == 0 or not last:
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() > deadline:
            print(json.dumps({"error": "hand_mesh_node did not connect in 90 s"}))
            return 1
    base = int(last.get("pairs_synchronized", "0"))
    period = 1.0 / args.rate
    t0 = time.monotonic()
    for i in range(args.pairs):
        target = t0 + i * period
        while (now := time.monotonic()) < target:
            rclpy.spin_once(node, timeout_sec=max(0.0, target - now))
        stamp = node.get_clock().now().nanoseconds
        pub.publish(pair_messages(samples[i % len(samples)], stamp))
    sent_s = time.monotonic() - t0
    end = time.monotonic() + args.settle
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    synchronized = int(last.get("pairs_synchronized", "0")) - base
    print(
        json.dumps(
            {
                "sent": args.pairs,
                "synchronized": synchronized,
                "send_rate_hz": args.pairs / sent_s,
                "node_processed": int(last.get("pairs_processed", "0")),
                "node_dropped_busy": int(last.get("dropped_pairs", "0")),
                "unmatched": int(last.get("unmatched_messages", "0")),
            }
        )
    )
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _run_one(reliability: str, profile: bool, domain: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["ROS_DOMAIN_ID"] = str(domain)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    node_cmd = [str(REPO / ".venv" / "bin" / "hand_mesh_node"), "--ros-args"]
    if reliability != "default":
        for topic in INPUTS:
            node_cmd += ["-p", f"qos_overrides./{topic}.subscription.reliability:={reliability}"]
    for extra in args.node_param:
        node_cmd += ["-p", extra]
    log = open(args.logs / f"node_{domain}.log", "w")  # noqa: SIM115 (closed below)
    node_env = dict(env)
    if args.node_profile is not None:  # an experiment: a profile for the node's process only
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(args.node_profile)
    node = subprocess.Popen(node_cmd, env=node_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        pub = subprocess.run(
            [sys.executable, __file__, "--role", "publish", "--pairs", str(args.pairs),
             "--samples", str(args.samples),
             "--rate", str(args.rate), "--settle", str(args.settle)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        node.send_signal(2)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)
        log.close()
    lines = [ln for ln in pub.stdout.splitlines() if ln.startswith("{")]
    if pub.returncode != 0 or not lines:
        raise RuntimeError(f"publisher failed ({pub.returncode}): {pub.stdout}\n{pub.stderr}")
    out = json.loads(lines[-1])
    out["delivered_percent"] = 100.0 * out["synchronized"] / out["sent"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("main", "publish"), default="main")
    parser.add_argument("--pairs", type=int, default=300, help="pairs sent per run")
    parser.add_argument("--rate", type=float, default=30.0, help="pairs per second")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after")
    parser.add_argument("--rounds", type=int, default=3, help="runs per combination")
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 77)))
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/input_qos.json")
    parser.add_argument(
        "--node-param", action="append", default=[], help="more node parameters (name:=value)"
    )
    parser.add_argument(
        "--node-profile", type=Path, default=None,
        help="experiment: a Fast DDS profile for the node's process only (the profile column "
        "then describes the publisher's)",
    )  # fmt: skip
    parser.add_argument("--samples", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--logs", type=Path, default=REPO / "runs" / "bench_input_qos")
    args = parser.parse_args()
    if args.role == "publish":
        return _publish(args)

    import numpy as np
    from machine import machine_description

    args.logs.mkdir(parents=True, exist_ok=True)
    # Three rendered pairs with a hand (the node works on every pair as on a camera's), made
    # once here so that each publisher process starts in a second.
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs

    pairs = list(iter_synthetic_pairs(SynthSettings(domain="source"), 3, seed=5))
    args.samples = args.logs / "pairs.npz"
    np.savez(args.samples, left=[p.left for p in pairs], right=[p.right for p in pairs])
    # "default" = the node's default input QoS (no override): the row the target is about.
    combos = [(rel, prof) for prof in (False, True) for rel in ("best_effort", "default")]
    runs: dict[str, list[dict]] = {f"{r}|{p}": [] for r, p in combos}
    domain = args.domain
    for rnd in range(args.rounds):
        for rel, prof in combos:
            out = _run_one(rel, prof, domain, args)
            domain = domain + 1 if domain < 100 else 10
            runs[f"{rel}|{prof}"].append(out)
            print(f"round {rnd + 1}: reliability={rel} profile={'shm' if prof else 'default'}: "
                  f"{out['synchronized']}/{out['sent']} ({out['delivered_percent']:.1f}%), "
                  f"sent at {out['send_rate_hz']:.1f} Hz; unmatched {out['unmatched']}",
                  flush=True)  # fmt: skip
    rows = []
    for rel, prof in combos:
        rs = runs[f"{rel}|{prof}"]
        pct = [r["delivered_percent"] for r in rs]
        rows.append(
            {
                "subscription_reliability": "reliable (node default)" if rel == "default" else rel,
                "fastdds_profile": "config/fastdds_shm.xml" if prof else "Fast DDS defaults",
                "delivered_percent_median": statistics.median(pct),
                "delivered_percent_min": min(pct),
                "delivered_percent_runs": pct,
                "send_rate_hz_median": statistics.median(r["send_rate_hz"] for r in rs),
            }
        )
    payload = {
        "what": "stereo pairs (640x480 rgb8) synchronized by hand_mesh_node / pairs sent by a "
        "separate reliable publisher process",
        "pairs_per_run": args.pairs,
        "rate_hz": args.rate,
        "rounds": args.rounds,
        "machine": machine_description(),
        "command": "ROS_DOMAIN_ID=77 .venv/bin/python benchmarks/bench_input_qos.py "
        f"--rounds {args.rounds} --pairs {args.pairs}",
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    md = [
        "| node input reliability | Fast DDS profile | delivered (median) | min | runs |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['subscription_reliability']} | {r['fastdds_profile']} | "
            f"{r['delivered_percent_median']:.1f}% | {r['delivered_percent_min']:.1f}% | "
            f"{', '.join(f'{p:.1f}' for p in r['delivered_percent_runs'])} |"
        )
    args.json.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
