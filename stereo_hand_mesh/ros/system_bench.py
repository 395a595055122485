"""The system benchmark (``stereo-hand-mesh bench --system``), after ros2_benchmark's method:
play a recorded stereo bag at fixed rates through the unmodified ``hand_mesh_node`` running in
its own process, and measure at its output, from this (another) process.

* **Input**: a stereo bag written by ``stereo-hand-mesh synth --bag`` (its pairs are loaded
  once and cycled; every publication gets the current time as its header stamp).
* **Drops**: at each rate, the pairs published minus the pairs the node processed (its
  ``/diagnostics`` counter ``pairs_processed``, which counts pairs with and without a mesh),
  over the pairs published: losses in DDS, in pairing and in the node's newest-pair mailbox.
* **Peak throughput**: the highest rate tried with under 5% dropped pairs, every lower rate
  tried also under 5% (:func:`peak_rate`: a rate above a failing one does not count).
* **Latency**: at ``--latency-rate`` (30 Hz), from the input's header stamp to the arrival of
  ``hand/<side>/joints`` here (median, p95, max).
* **Node resources**: CPU use (percent of one core, over the playback of the window) and
  resident memory, read from /proc through psutil.
* **Soak**: windows at ``latency_rate_hz``; :func:`soak_summary` checks that resident memory
  after the warm-up stays within ``rss_growth_bound_mb`` of its first value and under
  ``rss_bound_mb``, and that the drop rate of the second half is not above the first's.

Only ``hand/right/joints``, ``hand/left/joints`` and ``/diagnostics`` are subscribed (as a
grasp planner would be): the node builds markers and overlays only for subscribers.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo_hand_mesh._machine import machine_description, percentile
from stereo_hand_mesh.errors import ConfigError, DataError

__all__ = [
    "SystemBenchSettings",
    "bag_sha256",
    "markdown_table",
    "peak_rate",
    "run_system_bench",
    "soak_summary",
]

#: Dropped fraction under which a rate counts as held (ros2_benchmark's criterion).
MAX_DROPPED_FRACTION = 0.05


@dataclass(frozen=True)
class SystemBenchSettings:
    """What the system benchmark runs.

    Attributes:
        bags: stereo bags to play (one result set per bag).
        rates_hz: input rates tried for the peak throughput, pairs per second.
        latency_rate_hz: rate of the latency measurement.
        seconds: measured seconds per rate (after ``warmup_s``).
        warmup_s: unmeasured seconds at the start of each rate.
        soak_seconds: 0, or the length of a soak at ``latency_rate_hz`` (curves every
            ``soak_window_s``).
        soak_window_s: window of the soak curves, seconds.
        max_pairs: pairs loaded from each bag (cycled).
        node_params: extra ``-p`` parameters of ``hand_mesh_node``.
        soak_warmup_s: soak time after which memory must stay flat, seconds.
        rss_bound_mb: the node's resident memory bound over the soak, MiB.
        rss_growth_bound_mb: largest rise of resident memory after the soak's warm-up, MiB.
    """

    bags: tuple[Path, ...]
    rates_hz: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
    latency_rate_hz: float = 30.0
    seconds: float = 8.0
    warmup_s: float = 2.0
    soak_seconds: float = 0.0
    soak_window_s: float = 30.0
    max_pairs: int = 30
    node_params: tuple[tuple[str, str], ...] = ()
    soak_warmup_s: float = 60.0
    rss_bound_mb: float = 400.0
    rss_growth_bound_mb: float = 10.0

    def __post_init__(self) -> None:
        if not self.bags:
            raise ConfigError("system bench expected at least one --bag; got none")
        if any(r <= 0 for r in (*self.rates_hz, self.latency_rate_hz)):
            raise ConfigError(f"rates expected > 0 Hz; got {self.rates_hz}")
        if self.seconds <= 0 or self.warmup_s < 0 or self.soak_seconds < 0:
            raise ConfigError("seconds expected > 0, warmup and soak >= 0")


def bag_sha256(path: Path) -> str:
    """SHA-256 over the bag's files (sorted by name), hex."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class _Player:
    """Publishes the bag's pairs at a fixed rate from its own thread (absolute deadlines)."""

    def __init__(self, node: Any, pairs: list[Any]) -> None:
        from stereo_hand_mesh.ros.player import PairPublisher

        self.pub = PairPublisher(node)
        self.pairs = pairs
        self.node = node
        self.published = 0
        self.late = 0

    def play(self, rate_hz: float, seconds: float) -> int:
        period = 1.0 / rate_hz
        start = time.perf_counter()
        n = 0
        while True:
            deadline = start + n * period
            if deadline - start >= seconds:
                break
            wait = deadline - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -period:
                self.late += 1
            msgs = self.pairs[n % len(self.pairs)]
            stamp = self.node.get_clock().now().to_msg()
            for m in (msgs.left, msgs.left_info, msgs.right, msgs.right_info):
                m.header.stamp = stamp
            self.pub.publish(msgs)
            n += 1
        self.published += n
        return n


class _Listener:
    """Subscriptions to hand/right/joints and hand/left/joints (latency) and /diagnostics
    (pairs processed)."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray

        self.lock = threading.Lock()
        self.latencies: list[tuple[float, float]] = []
        self.processed = 0
        self.diagnostics: dict[str, str] = {}
        self.node = node
        for side in ("right", "left"):
            node.create_subscription(PoseArray, f"hand/{side}/joints", self._on_joints, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_joints(self, msg: Any) -> None:
        now = self.node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.latencies.append((time.monotonic(), (now - stamp) / 1e6))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith("hand_mesh_node"):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics = values
                    self.processed = int(values.get("pairs_processed", 0))


def _load_pairs(bag: Path, limit: int) -> list[Any]:
    from stereo_hand_mesh.data.bags import read_stereo_bag
    from stereo_hand_mesh.ros.player import pair_messages

    pairs = []
    for sample in read_stereo_bag(bag, load_ground_truth=False):
        pairs.append(pair_messages(sample, 0, encoding="bgr8"))
        if len(pairs) >= limit:
            break
    if not pairs:
        raise DataError(f"system bench expected stereo pairs in {bag}; got none")
    return pairs


def _start_node(settings: SystemBenchSettings, log: Path) -> subprocess.Popen:
    from stereo_hand_mesh._paths import executable_path, share_path

    args = [
        str(executable_path("hand_mesh_node")),
        "--ros-args",
        "--params-file",
        str(share_path("config", "hand_mesh.yaml")),
        "-p",
        "diagnostics_period_s:=0.5",
    ]
    for key, value in settings.node_params:
        args += ["-p", f"{key}:={value}"]
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _window(
    player: _Player, listener: _Listener, spin: Any, proc: Any, rate: float, seconds: float
) -> dict[str, Any]:
    """Play at ``rate`` for ``seconds`` and measure; returns the window's figures."""
    with listener.lock:
        processed0 = listener.processed
    proc.cpu_percent(None)
    t0 = time.monotonic()
    done = threading.Event()
    count = [0]

    def run() -> None:
        count[0] = player.play(rate, seconds)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    while not done.is_set():
        spin(0.05)
    cpu = proc.cpu_percent(None)  # over the playback only, not the tail below
    spin(1.2)  # the last outputs and a diagnostics message after the window
    rss = proc.memory_info().rss
    with listener.lock:
        processed = listener.processed - processed0
        lat = [ms for t, ms in listener.latencies if t >= t0]
    published = count[0]
    dropped = max(published - processed, 0)
    return {
        "rate_hz": rate,
        "published": published,
        "processed": processed,
        "meshes": len(lat),
        "dropped_fraction": round(dropped / published, 4) if published else None,
        "latency_p50_ms": statistics.median(lat) if lat else None,
        "latency_p95_ms": percentile(lat, 0.95) if lat else None,
        "latency_max_ms": max(lat) if lat else None,
        "node_cpu_percent": round(cpu, 1),
        "node_rss_mb": round(rss / 2**20, 1),
    }


def peak_rate(windows: list[dict[str, Any]]) -> float | None:
    """The peak throughput: the highest rate held with every lower rate held too.

    Args:
        windows: one dict per rate tried, with ``rate_hz`` and ``dropped_fraction`` (None
            when nothing was published, which counts as not held).

    Returns:
        Pairs per second, or None when even the lowest rate dropped
        :data:`MAX_DROPPED_FRACTION` or more.
    """
    best = None
    for w in sorted(windows, key=lambda w: w["rate_hz"]):
        dropped = w["dropped_fraction"]
        if dropped is None or dropped >= MAX_DROPPED_FRACTION:
            break
        best = w["rate_hz"]
    return best


def soak_summary(windows: list[dict[str, Any]], settings: SystemBenchSettings) -> dict[str, Any]:
    """Whether the soak held: memory flat after the warm-up, drop rate not growing.

    Args:
        windows: the soak's windows in time order, each with ``t_s`` (end of the window,
            seconds), ``published``, ``processed`` and ``node_rss_mb``.
        settings: the bounds (``soak_warmup_s``, ``rss_bound_mb``, ``rss_growth_bound_mb``).

    Returns:
        RSS after warm-up (first, max, rise), drop fractions of the two halves, and the
        verdicts ``rss_within_bound`` and ``drops_not_growing``.
    """
    if not windows:
        raise DataError("soak_summary expected at least one soak window; got none")
    after = [w for w in windows if w["t_s"] > settings.soak_warmup_s] or windows[-1:]
    rss = [w["node_rss_mb"] for w in after]
    rise = max(rss) - rss[0]

    def dropped(ws: list[dict[str, Any]]) -> float:
        published = sum(w["published"] for w in ws)
        lost = sum(max(w["published"] - w["processed"], 0) for w in ws)
        return lost / published if published else 0.0

    half = len(windows) // 2
    first, second = dropped(windows[:half] or windows), dropped(windows[half:])
    return {
        "rss_after_warmup_first_mb": rss[0],
        "rss_after_warmup_max_mb": max(rss),
        "rss_rise_after_warmup_mb": round(rise, 1),
        "rss_within_bound": bool(
            max(rss) <= settings.rss_bound_mb and rise <= settings.rss_growth_bound_mb
        ),
        "dropped_first_half": round(first, 4),
        "dropped_second_half": round(second, 4),
        # Not growing: the second half drops no more than the first, give or take 0.5%.
        "drops_not_growing": bool(second <= first + 0.005),
    }


def _model_sha256(settings: SystemBenchSettings, diagnostics: dict[str, str]) -> str:
    """SHA-256 of the model files the node serves (their bytes in order: its diagnostics'
    ``model_files``, else its parameter, else the shipped legacy default)."""
    from stereo_hand_mesh.runtime.select import default_model_files

    files = [f for f in diagnostics.get("model_files", "").split(" + ") if f]
    if not files:
        path = dict(settings.node_params).get("model_file_path", "")
        if not path:
            default_pt, default_onnx = default_model_files()
            torch = diagnostics.get("backend", "").startswith("torch")
            path = str(default_pt if torch else default_onnx)
        files = [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    return digest.hexdigest()


def run_system_bench(settings: SystemBenchSettings, out_dir: Path) -> dict[str, Any]:
    """Run the benchmark on every bag; returns the JSON payload (see the module docstring)."""
    import psutil
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    rclpy.init()
    try:
        for bag in settings.bags:
            pairs = _load_pairs(bag, settings.max_pairs)
            width, height = pairs[0].left.width, pairs[0].left.height
            log = out_dir / f"hand_mesh_node_{width}x{height}.log"
            proc = _start_node(settings, log)
            node = Node("system_bench")
            executor = SingleThreadedExecutor()
            executor.add_node(node)

            def spin(seconds: float, executor: Any = executor) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.01)

            try:
                listener = _Listener(node)
                player = _Player(node, pairs)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (
                    player.pub.subscribers() == 0 or not listener.diagnostics
                ):
                    spin(0.1)
                    if proc.poll() is not None:
                        raise DataError(f"hand_mesh_node exited; see {log}")
                ps = psutil.Process(proc.pid)
                player.play(settings.latency_rate_hz, settings.warmup_s)  # warm-up
                spin(1.0)
                rates = []
                for rate in settings.rates_hz:
                    player.play(rate, settings.warmup_s)
                    spin(0.5)
                    rates.append(_window(player, listener, spin, ps, rate, settings.seconds))
                latency = _window(
                    player, listener, spin, ps, settings.latency_rate_hz, settings.seconds
                )
                soak = []
                if settings.soak_seconds > 0:
                    windows = max(int(settings.soak_seconds // settings.soak_window_s), 1)
                    for i in range(windows):
                        w = _window(
                            player, listener, spin, ps, settings.latency_rate_hz,
                            settings.soak_window_s,
                        )  # fmt: skip
                        w["t_s"] = round((i + 1) * settings.soak_window_s, 1)
                        soak.append(w)
                results.append(
                    {
                        "bag": str(bag),
                        "bag_sha256": bag_sha256(bag),
                        "image": f"{width}x{height} bgr8",
                        "backend": listener.diagnostics.get("backend", ""),
                        "peak_rate_hz": peak_rate(rates),
                        "rates": rates,
                        "latency": latency,
                        "soak": soak,
                        "soak_summary": soak_summary(soak, settings) if soak else None,
                        "model": listener.diagnostics.get("model", ""),
                        "model_sha256": _model_sha256(settings, listener.diagnostics),
                        "player_late_publications": player.late,
                    }
                )
            finally:
                executor.remove_node(node)
                node.destroy_node()
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    finally:
        rclpy.try_shutdown()
    return {
        "machine": machine_description(),
        "config": {
            "rates_hz": list(settings.rates_hz),
            "latency_rate_hz": settings.latency_rate_hz,
            "seconds_per_rate": settings.seconds,
            "warmup_s": settings.warmup_s,
            "soak_seconds": settings.soak_seconds,
            "soak_window_s": settings.soak_window_s,
            "soak_warmup_s": settings.soak_warmup_s,
            "rss_bound_mb": settings.rss_bound_mb,
            "rss_growth_bound_mb": settings.rss_growth_bound_mb,
            "max_dropped_fraction": MAX_DROPPED_FRACTION,
            "pairs_cycled": settings.max_pairs,
            "node": "hand_mesh_node, config/hand_mesh.yaml, own process",
            "node_params": dict(settings.node_params),
            "dds": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "Fast DDS defaults"),
        },
        "results": results,
    }


def markdown_table(payload: dict[str, Any]) -> str:
    """Peak throughput, latency at the latency rate, CPU and memory, per input size."""

    def f(value: Any, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        "| input | backend | peak pairs/s (<5% dropped) | latency p50 / p95 / max ms "
        f"@ {payload['config']['latency_rate_hz']:g} Hz | node CPU % | node RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        lat = r["latency"]
        lines.append(
            f"| {r['image']} | {r['backend'].split(':')[0]} | {f(r['peak_rate_hz'], 'g')} | "
            f"{f(lat['latency_p50_ms'])} / {f(lat['latency_p95_ms'])} / "
            f"{f(lat['latency_max_ms'])} | {f(lat['node_cpu_percent'])} | "
            f"{f(lat['node_rss_mb'])} |"
        )
    lines += ["", "| input | rate Hz | published | processed | dropped | p50 ms | CPU % |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in payload["results"]:
        for w in r["rates"]:
            lines.append(
                f"| {r['image']} | {w['rate_hz']:g} | {w['published']} | {w['processed']} | "
                f"{f(100 * w['dropped_fraction'] if w['dropped_fraction'] is not None else None)}"
                f"% | {f(w['latency_p50_ms'])} | {f(w['node_cpu_percent'])} |"
            )
    for r in payload["results"]:
        if r["soak"]:
            lines += ["", f"Soak, {r['image']} at {payload['config']['latency_rate_hz']:g} Hz:"]
            summary = r.get("soak_summary")
            if summary:
                lines += ["", *_soak_verdicts(summary, payload["config"])]
            lines += [
                "",
                "| t s | published | dropped | p50 ms | max ms | CPU % | RSS MB |",
                "|---|---|---|---|---|---|---|",
            ]
            for w in r["soak"]:
                lines.append(
                    f"| {w['t_s']:g} | {w['published']} | "
                    f"{f(100 * (w['dropped_fraction'] or 0))}% | {f(w['latency_p50_ms'])} | "
                    f"{f(w['latency_max_ms'])} | {f(w['node_cpu_percent'])} | "
                    f"{f(w['node_rss_mb'])} |"
                )
    return "\n".join(lines) + "\n"


def _soak_verdicts(summary: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Two markdown bullets: the memory bound and the drop trend of a soak."""
    rss = (
        f"- RSS after {cfg['soak_warmup_s']:g} s: {summary['rss_after_warmup_first_mb']} -> "
        f"max {summary['rss_after_warmup_max_mb']} MB (rise "
        f"{summary['rss_rise_after_warmup_mb']} MB; bounds {cfg['rss_bound_mb']:g} MB and "
        f"+{cfg['rss_growth_bound_mb']:g} MB): "
        + ("held" if summary["rss_within_bound"] else "NOT held")
    )
    drops = (
        f"- dropped: first half {100 * summary['dropped_first_half']:.2f}%, second half "
        f"{100 * summary['dropped_second_half']:.2f}%: "
        + ("not growing" if summary["drops_not_growing"] else "GROWING")
    )
    return [rss, drops]


def write_results(payload: dict[str, Any], json_path: Path) -> None:
    """The JSON and, beside it, the markdown table."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(markdown_table(payload))
