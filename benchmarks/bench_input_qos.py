#!/usr/bin/env python3
"""Pairs delivered to hand_mesh_node by its input QoS and the Fast DDS profiles.

For each combination of the node's input reliability (best effort, reliable; set with the
standard QoS override parameters ``qos_overrides./<topic>.subscription.reliability``) and the
middleware profiles, the benchmark starts ``hand_mesh_node`` (its default settings otherwise)
and, in a separate process, a publisher of 640x480 rgb8 stereo pairs at 30 Hz that publishes
reliably, keep last 10 (as image_transport and most camera drivers do). The profiles:

* ``defaults``: Fast DDS's defaults in both processes (the node is given a profiles file
  that changes nothing, which keeps it from loading its own);
* ``node``: the node's own profile, ``config/fastdds_udp_inputs.xml``, which it loads by
  itself when FASTDDS_DEFAULT_PROFILES_FILE is unset (stereo_hand_mesh.ros.fastdds_profile);
  the publisher on Fast DDS's defaults. This is the default configuration;
* ``shm``: ``config/fastdds_shm.xml`` (shared memory, 16 MB segments) in both processes.

The publisher counts the pairs it sent; the node's ``/diagnostics`` (``pairs_synchronized``)
counts the pairs that reached it whole (all four messages, paired). Delivered = synchronized
/ sent.

    .venv/bin/python benchmarks/bench_input_qos.py --domain 60 --domain-span 10 --rounds 3 \\
        --json benchmarks/results/input_qos.json

Every process runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; run k uses ROS_DOMAIN_ID
``domain + k % domain_span``. Writes JSON and a Markdown table beside it.
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

from stereo_hand_mesh.ros.fastdds_profile import PROFILE_ENV_VARS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SHM_PROFILE = REPO / "config" / "fastdds_shm.xml"
#: Profile settings: (name, node's profile label, publisher's profile label).
PROFILES = (
    ("defaults", "Fast DDS defaults", "Fast DDS defaults"),
    ("node", "its own, config/fastdds_udp_inputs.xml (default)", "Fast DDS defaults"),
    ("shm", "config/fastdds_shm.xml", "config/fastdds_shm.xml"),
)
#: A profiles file that changes nothing (one participant profile, not the default one; an
#: empty <profiles> makes Fast DDS log an error).
NO_PROFILES = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<dds xmlns="http://www.eprosima.com"><profiles>'
    '<participant profile_name="fastdds_defaults"/></profiles></dds>\n'
)
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


def _run_one(reliability: str, profile: str, domain: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["ROS_DOMAIN_ID"] = str(domain)
    for name in PROFILE_ENV_VARS:
        env.pop(name, None)
    node_env = dict(env)
    if profile == "shm":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
    elif profile == "defaults":
        unchanged = args.logs / "fastdds_defaults.xml"
        unchanged.write_text(NO_PROFILES)
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(unchanged)
    if args.node_profile is not None:  # an experiment: a profile for the node's process only
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(args.node_profile)
    # The console script: its main() loads the node's own profile when none is set.
    node_cmd = [str(REPO / ".venv" / "bin" / "hand_mesh_node"), "--ros-args"]
    if reliability != "default":
        for topic in INPUTS:
            node_cmd += ["-p", f"qos_overrides./{topic}.subscription.reliability:={reliability}"]
    for extra in args.node_param:
        node_cmd += ["-p", extra]
    log = open(args.logs / f"node_{domain}.log", "w")  # noqa: SIM115 (closed below)
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


def _rmem_max() -> int | None:
    """net.core.rmem_max, bytes: the cap on a UDP receive buffer (None off Linux)."""
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return None


def _middleware() -> str:
    """The RMW implementation and, when they are found under this interpreter's prefix, its
    version (package.xml) and Fast DDS's (the library's file name)."""
    import re

    prefix = Path(sys.prefix)
    parts = [os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp (ROS default)"]
    package = prefix / "share" / "rmw_fastrtps_cpp" / "package.xml"
    if package.is_file():
        found = re.search(r"<version>([^<]+)</version>", package.read_text())
        if found:
            parts.append(f"rmw_fastrtps_cpp {found.group(1)}")
    libs = sorted(p.name for p in (prefix / "lib").glob("libfastdds.so.*.*.*"))
    if libs:
        parts.append("Fast DDS " + libs[-1].removeprefix("libfastdds.so."))
    return "; ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("main", "publish"), default="main")
    parser.add_argument("--pairs", type=int, default=300, help="pairs sent per run")
    parser.add_argument("--rate", type=float, default=30.0, help="pairs per second")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after")
    parser.add_argument("--rounds", type=int, default=3, help="runs per combination")
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 77)))
    parser.add_argument(
        "--domain-span", type=int, default=1,
        help="run k uses ROS_DOMAIN_ID domain + k %% span (a fresh domain for each run)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/input_qos.json")
    parser.add_argument(
        "--node-param", action="append", default=[], help="more node parameters (name:=value)"
    )
    parser.add_argument(
        "--node-profile", type=Path, default=None,
        help="experiment: a Fast DDS profile for the node's process only, in every row (the "
        "profile columns then describe the publisher's)",
    )  # fmt: skip
    parser.add_argument(
        "--profiles", nargs="+", choices=[p[0] for p in PROFILES],
        default=[p[0] for p in PROFILES], help="profile settings to run (default: all)",
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
    # "default" = the node's default input QoS (no override): with profile "node", the row
    # the target is about.
    combos = [
        (rel, prof[0])
        for prof in PROFILES
        if prof[0] in args.profiles
        for rel in ("best_effort", "default")
    ]
    labels = {name: (node, publisher) for name, node, publisher in PROFILES}
    runs: dict[str, list[dict]] = {f"{r}|{p}": [] for r, p in combos}
    k = 0
    for rnd in range(args.rounds):
        for rel, prof in combos:
            out = _run_one(rel, prof, args.domain + k % args.domain_span, args)
            k += 1
            runs[f"{rel}|{prof}"].append(out)
            print(f"round {rnd + 1}: reliability={rel} profile={prof}: "
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
                "profiles": prof,
                "node_fastdds_profile": labels[prof][0]
                if args.node_profile is None
                else str(args.node_profile),
                "publisher_fastdds_profile": labels[prof][1],
                "delivered_percent_median": statistics.median(pct),
                "delivered_percent_min": min(pct),
                "delivered_percent_runs": pct,
                "send_rate_hz_median": statistics.median(r["send_rate_hz"] for r in rs),
            }
        )
    command = (
        ".venv/bin/python benchmarks/bench_input_qos.py --domain 60 --domain-span 10 "
        f"--rounds {args.rounds} --pairs {args.pairs}"
    )
    if args.profiles != [p[0] for p in PROFILES]:
        command += " --profiles " + " ".join(args.profiles)
    if args.node_profile is not None:
        command += f" --node-profile {args.node_profile}"
    payload = {
        "what": "stereo pairs (640x480 rgb8) synchronized by hand_mesh_node / pairs sent by a "
        "separate reliable publisher process (keep last 10, 30 Hz)",
        "pairs_per_run": args.pairs,
        "rate_hz": args.rate,
        "rounds": args.rounds,
        "machine": machine_description(),
        "net_core_rmem_max": _rmem_max(),
        "middleware": _middleware(),
        "command": command,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    md = [
        "| node input reliability | node's Fast DDS profile | publisher's | delivered (median) "
        "| min | runs |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['subscription_reliability']} | {r['node_fastdds_profile']} | "
            f"{r['publisher_fastdds_profile']} | "
            f"{r['delivered_percent_median']:.1f}% | {r['delivered_percent_min']:.1f}% | "
            f"{', '.join(f'{p:.1f}' for p in r['delivered_percent_runs'])} |"
        )
    args.json.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
