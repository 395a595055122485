"""Benchmark: the template fit to both views' keypoints (``pipeline/fit.py``), speed and accuracy.

Synthetic ground truth is the template hand itself (natural poses from ``sample_pose``, random
shapes within the limits, random global rotations, the hand's centre 0.4-0.9 m in front of the
rig); its skeleton joints are projected into both views of two rigs:

- ``stb``: STB-like Bumblebee2, fx = fy = 822.8, cx = 318.5, cy = 250.3, B = 0.12 m;
- ``tabletop``: fx = fy = 605.2, cx_l = 260, cx_r = 594, cy = 240, B = 0.486 m (the hand
  about half a baseline to the right, where both views see it).

Reported per rig:

- ``timing``: wall time of :func:`fit_hand` on keypoints with 1 px Gaussian noise: ``cold``
  (``init=None``) and ``warm`` (the next pair, 1/30 s later: every pose parameter moved by
  N(0, 0.02 rad), the hand turned by about 1 degree and moved by about 3 mm, fitted from the
  previous pair's fit); median and p95 ms, mean iterations.
- ``accuracy``: for Gaussian keypoint noise of 0.5, 1, 2 and 4 px (each coordinate, each
  view): the mean 3D joint error (mm, mean over joints then scenes, and its p90 over scenes)
  of the cold fit and of plain disparity triangulation of the same keypoints; and the fit
  with 1 px noise plus 3 keypoints moved 40 px (``outliers_40px``).
- ``kinematics``: the cost of the skeleton module's batched ``forward_kinematics`` (B = 1 and
  the 42 parameter vectors a finite-difference Jacobian would need) against the fit's lean
  forward kinematics and analytic Jacobian (why the fit does not use finite differences).

Run (about a minute on 2 cores)::

    .venv/bin/python benchmarks/bench_fit.py --json benchmarks/results/fit.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description, percentile

from stereo_hand_mesh.geometry.camera import PinholeCamera, StereoRig
from stereo_hand_mesh.hand.chain import template_chain
from stereo_hand_mesh.hand.model import template_hand
from stereo_hand_mesh.hand.poses import sample_pose
from stereo_hand_mesh.hand.shape import sample_shape_vectors
from stereo_hand_mesh.hand.skeleton import POSE_LIMITS, forward_kinematics
from stereo_hand_mesh.pipeline import fit as fit_module
from stereo_hand_mesh.pipeline.fit import fit_hand

#: name -> (k_left, k_right, baseline metres, hand centre x over z, or None for B / 2).
RIGS: dict[str, tuple[np.ndarray, np.ndarray, float, float | None]] = {
    "stb": (
        np.array([822.8, 822.8, 318.5, 250.3]),
        np.array([822.8, 822.8, 318.5, 250.3]),
        0.12,
        0.0,
    ),
    "tabletop": (
        np.array([605.2, 605.2, 260.0, 240.0]),
        np.array([605.2, 605.2, 594.0, 240.0]),
        0.486,
        None,
    ),
}
NOISE_PX = (0.5, 1.0, 2.0, 4.0)


def _camera(k: np.ndarray, tx: float) -> PinholeCamera:
    """A rectified pinhole camera from ``[fx, fy, cx, cy]`` and ``P[0, 3]``."""
    fx, fy, cx, cy = (float(v) for v in k)
    p = np.array([[fx, 0.0, cx, tx], [0.0, fy, cy, 0.0], [0.0, 0.0, 1.0, 0.0]])
    return PinholeCamera(1280, 960, fx, fy, cx, cy, tx, 0.0, p[:, :3], np.zeros(5), np.eye(3), p)


#: The rigs above as the package's StereoRig (its projection and triangulation).
STEREO_RIGS = {
    name: StereoRig(_camera(kl, 0.0), _camera(kr, -kr[0] * b), b)
    for name, (kl, kr, b, _) in RIGS.items()
}


def project(joints: np.ndarray, rig: str) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) metres -> left and right (21, 2) pixels."""
    stereo = STEREO_RIGS[rig]
    return stereo.project_left(joints), stereo.project_right(joints)


def triangulate(uv_l: np.ndarray, uv_r: np.ndarray, rig: str) -> np.ndarray:
    """Plain disparity triangulation, (21, 3) metres."""
    return STEREO_RIGS[rig].triangulate(uv_l, uv_r).points


def make_hand(rng: np.random.Generator, rig: str) -> dict[str, np.ndarray]:
    """Parameters and skeleton (21, 3) of a random hand in front of ``rig``."""
    pose = sample_pose(rng, 1)[0]
    shape = sample_shape_vectors(rng, 1)[0]
    rot = Rotation.random(random_state=int(rng.integers(1 << 31))).as_rotvec()
    _, skeleton = template_hand().skin(pose[None], shape[None], rot[None], np.zeros((1, 3)))
    z = rng.uniform(0.4, 0.9)
    ratio = RIGS[rig][3]
    centre_x = RIGS[rig][2] / 2 if ratio is None else ratio * z
    centre = np.array([centre_x + rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.05) * z, z])
    trans = centre - skeleton[0].mean(axis=0)
    return {
        "pose": pose,
        "shape": shape,
        "rot": rot,
        "trans": trans,
        "joints": skeleton[0] + trans,
    }


def next_pair(rng: np.random.Generator, hand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same hand 1/30 s later (see the module docstring)."""
    pose = np.clip(hand["pose"] + 0.02 * rng.standard_normal(26), *POSE_LIMITS)
    turn = Rotation.from_rotvec(np.radians(1.0) * rng.standard_normal(3) / np.sqrt(3))
    rot = (turn * Rotation.from_rotvec(hand["rot"])).as_rotvec()
    trans = hand["trans"] + 0.003 * rng.standard_normal(3) / np.sqrt(3)
    _, skeleton = template_hand().skin(pose[None], hand["shape"][None], rot[None], trans[None])
    return {**hand, "pose": pose, "rot": rot, "trans": trans, "joints": skeleton[0]}


def noisy(rng: np.random.Generator, joints: np.ndarray, rig: str, noise: float) -> tuple:
    uv_l, uv_r = project(joints, rig)
    return (
        uv_l + noise * rng.standard_normal(uv_l.shape),
        uv_r + noise * rng.standard_normal(uv_r.shape),
    )


def error_mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1e3)


def summary_ms(times: list[float]) -> dict[str, float]:
    ms = [t * 1e3 for t in times]
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 0.95)}


def bench_timing(rig: str, scenes: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    kl, kr, baseline, _ = RIGS[rig]
    weights = np.ones((2, 21))
    cold_t, warm_t, cold_it, warm_it = [], [], [], []
    for _ in range(scenes):
        hand = make_hand(rng, rig)
        uv_l, uv_r = noisy(rng, hand["joints"], rig, 1.0)
        t0 = time.perf_counter()
        first = fit_hand(uv_l, uv_r, kl, kr, baseline, weights)
        cold_t.append(time.perf_counter() - t0)
        cold_it.append(first.iterations)
        moved = next_pair(rng, hand)
        uv_l, uv_r = noisy(rng, moved["joints"], rig, 1.0)
        t0 = time.perf_counter()
        second = fit_hand(uv_l, uv_r, kl, kr, baseline, weights, init=first)
        warm_t.append(time.perf_counter() - t0)
        warm_it.append(second.iterations)
    return {
        "cold": {**summary_ms(cold_t), "mean_iterations": float(np.mean(cold_it))},
        "warm": {**summary_ms(warm_t), "mean_iterations": float(np.mean(warm_it))},
    }


def bench_accuracy(rig: str, scenes: int, seed: int) -> dict[str, Any]:
    kl, kr, baseline, _ = RIGS[rig]
    weights = np.ones((2, 21))
    out: dict[str, Any] = {}
    for noise in NOISE_PX:
        rng = np.random.default_rng(seed)
        fitted, plain = [], []
        for _ in range(scenes):
            hand = make_hand(rng, rig)
            uv_l, uv_r = noisy(rng, hand["joints"], rig, noise)
            fit = fit_hand(uv_l, uv_r, kl, kr, baseline, weights)
            fitted.append(error_mm(fit.joints, hand["joints"]))
            plain.append(error_mm(triangulate(uv_l, uv_r, rig), hand["joints"]))
        out[f"{noise:g}px"] = {
            "fit_mm": float(np.mean(fitted)),
            "fit_p90_mm": percentile(fitted, 0.9),
            "triangulation_mm": float(np.mean(plain)),
            "triangulation_p90_mm": percentile(plain, 0.9),
        }
    rng = np.random.default_rng(seed)
    fitted, plain = [], []
    for _ in range(scenes):
        hand = make_hand(rng, rig)
        uv = np.stack(noisy(rng, hand["joints"], rig, 1.0))
        joints, views = rng.choice(21, 3, replace=False), rng.integers(0, 2, 3)
        angles = rng.uniform(0, 2 * np.pi, 3)
        uv[views, joints] += 40.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        fitted.append(error_mm(fit_hand(*uv, kl, kr, baseline, weights).joints, hand["joints"]))
        plain.append(error_mm(triangulate(*uv, rig), hand["joints"]))
    out["outliers_40px"] = {
        "fit_mm": float(np.mean(fitted)),
        "fit_p90_mm": percentile(fitted, 0.9),
        "triangulation_mm": float(np.mean(plain)),
        "triangulation_p90_mm": percentile(plain, 0.9),
    }
    return out


def bench_kinematics(repeats: int = 300) -> dict[str, float]:
    model = template_hand()
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for batch in (1, 42):
        pose = sample_pose(rng, batch, uniform=True)
        rest = np.broadcast_to(model.rest_joints, (batch, 21, 3)).copy()
        rot, trans = np.zeros((batch, 3)), np.zeros((batch, 3))
        t0 = time.perf_counter()
        for _ in range(repeats):
            forward_kinematics(rest, pose, model.joint_frames, rot, trans)
        out[f"forward_kinematics_batch{batch}_ms"] = (time.perf_counter() - t0) / repeats * 1e3
    chain = template_chain()
    pose, shape = sample_pose(rng, 1)[0], np.ones(9)
    rot, trans = np.eye(3), np.array([0.0, 0.0, 0.6])
    t0 = time.perf_counter()
    for _ in range(repeats):
        posed = fit_module._pose_skeleton(chain, pose, shape, rot, trans)
    out["lean_fk_ms"] = (time.perf_counter() - t0) / repeats * 1e3
    t0 = time.perf_counter()
    for _ in range(repeats):
        fit_module._joint_jacobian(chain, posed, shape, trans)
    out["lean_jacobian_ms"] = (time.perf_counter() - t0) / repeats * 1e3
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fit.json"))
    parser.add_argument("--scenes", type=int, default=200, help="hands per rig and noise level")
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args(argv)
    fit_hand(*project(make_hand(np.random.default_rng(0), "stb")["joints"], "stb"),
             RIGS["stb"][0], RIGS["stb"][1], RIGS["stb"][2], np.ones((2, 21)))  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "fit",
        "scenes": args.scenes,
        "seed": args.seed,
        "machine": machine_description(),
        "kinematics": bench_kinematics(),
        "rigs": {},
    }
    for rig in RIGS:
        result["rigs"][rig] = {
            "timing": bench_timing(rig, args.scenes, args.seed),
            "accuracy": bench_accuracy(rig, args.scenes, args.seed + 1),
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("| rig | cold median / p95 ms | warm median / p95 ms | iterations cold / warm |")
    print("|---|---|---|---|")
    for rig, r in result["rigs"].items():
        c, w = r["timing"]["cold"], r["timing"]["warm"]
        print(
            f"| {rig} | {c['median_ms']:.2f} / {c['p95_ms']:.2f} | {w['median_ms']:.2f} / "
            f"{w['p95_ms']:.2f} | {c['mean_iterations']:.1f} / {w['mean_iterations']:.1f} |"
        )
    print("\n| rig | noise | fit mm (p90) | triangulation mm (p90) |")
    print("|---|---|---|---|")
    for rig, r in result["rigs"].items():
        for level, a in r["accuracy"].items():
            print(
                f"| {rig} | {level} | {a['fit_mm']:.2f} ({a['fit_p90_mm']:.2f}) | "
                f"{a['triangulation_mm']:.2f} ({a['triangulation_p90_mm']:.2f}) |"
            )
    print(json.dumps(result["kinematics"], indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
