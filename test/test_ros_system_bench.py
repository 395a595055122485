"""The system benchmark's machinery on a tiny bag (the figures come from benchmarks/, not here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from node_process import BIN

from stereo_hand_mesh.ros.system_bench import bag_sha256


def test_bench_system_plays_a_bag_through_the_node_and_writes_its_tables(tmp_path):
    bag = tmp_path / "bag"
    synth = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "synth", "--domain", "source", "--count", "4",
         "--seed", "3", "--bag", "--width", "320", "--height", "240", "--out", str(bag),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    out = tmp_path / "system.json"
    run = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "bench", "--system", "--bag", str(bag), "--rates",
         "10", "--seconds", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    payload = json.loads(out.read_text())
    (result,) = payload["results"]
    assert result["bag_sha256"] == bag_sha256(bag)
    assert result["image"] == "320x240 bgr8"
    assert result["backend"].startswith("onnxruntime")
    (window,) = result["rates"]
    assert window["published"] == 20 and 0 < window["processed"] <= 21
    assert window["node_rss_mb"] > 50 and window["node_cpu_percent"] > 0
    assert result["peak_rate_hz"] in (10, None)  # one rate tried: held or not
    lat = result["latency"]
    assert lat["meshes"] > 0, run.stdout
    assert 0 < lat["latency_p50_ms"] <= lat["latency_p95_ms"] <= lat["latency_max_ms"] < 5000
    assert result["model"] == "(shipped default)" and len(result["model_sha256"]) == 64
    assert {"machine", "config"} <= set(payload)
    assert "peak pairs/s" in out.with_suffix(".md").read_text()


def _w(rate: float, published: int, processed: int) -> dict:
    return {
        "rate_hz": rate,
        "published": published,
        "processed": processed,
        "dropped_fraction": (published - processed) / published if published else None,
    }


def test_peak_rate_is_the_highest_rate_held_with_every_lower_rate_held():
    from stereo_hand_mesh.ros.system_bench import peak_rate

    # 4.9% dropped holds, 5.0% does not; a rate above a failing one does not count.
    windows = [_w(30, 1000, 1000), _w(60, 1000, 951), _w(90, 1000, 950), _w(120, 1000, 1000)]
    assert peak_rate(windows) == 60
    assert peak_rate(list(reversed(windows))) == 60  # order of the windows does not matter
    assert peak_rate([_w(15, 100, 90)]) is None
    assert peak_rate([_w(15, 0, 0)]) is None  # nothing published is not a held rate


def test_soak_summary_flags_memory_growth_and_growing_drops():
    from stereo_hand_mesh.ros.system_bench import SystemBenchSettings, soak_summary

    settings = SystemBenchSettings(bags=(Path("bag"),), soak_warmup_s=60, rss_growth_bound_mb=10)

    def soak(rss: list[float], processed: list[int]) -> list[dict]:
        return [
            {"t_s": 30.0 * (i + 1), "published": 900, "processed": p, "node_rss_mb": r}
            for i, (r, p) in enumerate(zip(rss, processed, strict=True))
        ]

    # A big rise during the warm-up (first 60 s) is allowed; flat afterwards holds.
    flat = soak_summary(soak([150, 240, 248, 249, 249, 250], [900] * 6), settings)
    assert flat["rss_within_bound"] and flat["drops_not_growing"]
    assert flat["rss_after_warmup_first_mb"] == 248 and flat["rss_rise_after_warmup_mb"] == 2
    leak = soak_summary(soak([240, 248, 252, 256, 260, 264], [900] * 6), settings)
    assert not leak["rss_within_bound"] and leak["rss_rise_after_warmup_mb"] == 12
    over = soak_summary(soak([390, 398, 401, 401, 401, 401], [900] * 6), settings)
    assert not over["rss_within_bound"]  # flat, but above the 400 MB bound
    growing = soak_summary(soak([248] * 6, [900, 900, 900, 890, 870, 850]), settings)
    assert not growing["drops_not_growing"]
    assert growing["dropped_first_half"] == 0 and growing["dropped_second_half"] > 0.02


def test_markdown_table_reports_the_soak_verdicts():
    from stereo_hand_mesh.ros.system_bench import (
        SystemBenchSettings,
        markdown_table,
        soak_summary,
    )

    settings = SystemBenchSettings(bags=(Path("bag"),))
    window = {
        **_w(30, 900, 900),
        "t_s": 90.0,
        "latency_p50_ms": 15.0,
        "latency_p95_ms": 18.0,
        "latency_max_ms": 20.0,
        "node_cpu_percent": 50.0,
        "node_rss_mb": 248.0,
    }
    payload = {
        "config": {
            "latency_rate_hz": 30.0,
            "soak_warmup_s": 60.0,
            "rss_bound_mb": 400.0,
            "rss_growth_bound_mb": 10.0,
        },
        "results": [
            {
                "image": "640x480 bgr8",
                "backend": "onnxruntime-cpu: why",
                "peak_rate_hz": 30.0,
                "rates": [window],
                "latency": window,
                "soak": [window],
                "soak_summary": soak_summary([window], settings),
            }
        ],
    }
    table = markdown_table(payload)
    assert "| 640x480 bgr8 | onnxruntime-cpu | 30 | 15.0 / 18.0 / 20.0 | 50.0 | 248.0 |" in table
    assert "Soak, 640x480 bgr8 at 30 Hz" in table and "held" in table and "not growing" in table
    assert "| 90 | 900 | 0.0% | 15.0 | 20.0 | 50.0 | 248.0 |" in table
