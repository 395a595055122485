"""``stereo-hand-mesh synth``: write a synthetic split (PNG + annotations), a rosbag2 bag, or
(``--motion --real-folder``) a real stereo folder of the simulator's motion with one or two
hands' labels."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from stereo_hand_mesh.errors import ConfigError

__all__ = ["add_synth_parser", "run_synth"]


def add_synth_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``synth`` subcommand."""
    p = sub.add_parser(
        "synth",
        help="render synthetic stereo hand pairs with ground truth (source or target domain)",
        description="Render stereo pairs of the template hand. Default rig: STB's Bumblebee2 "
        "(640x480, fx=822.79 px, baseline 120.054 mm); other sizes scale its intrinsics.",
    )
    p.add_argument("--domain", choices=("source", "target"), required=True)
    p.add_argument(
        "--look", choices=("real", "plain"), default="real",
        help="real: forearm, skin detail, light set-ups, table-top scenes, motion blur and "
        "JPEG (default); plain: the hand alone over a background plane (the legacy look)",
    )  # fmt: skip
    p.add_argument("--count", type=int, required=True, help="number of stereo pairs")
    p.add_argument("--out", type=Path, required=True, help="split directory or bag to create")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--baseline", type=float, default=None, help="baseline in metres")
    p.add_argument(
        "--bag", action="store_true", help="write a rosbag2 bag (four stereo topics + gt)"
    )
    p.add_argument("--rate", type=float, default=30.0, help="bag frame rate, Hz")
    p.add_argument(
        "--motion", action="store_true",
        help="(bag) consecutive frames of the simulator's smooth hand motion at --rate, "
        "as a camera sees them, instead of unrelated scenes",
    )  # fmt: skip
    p.add_argument(
        "--hands", type=int, choices=(1, 2), default=1,
        help="(--motion) one hand, or a person's right and left hand each with its own motion",
    )  # fmt: skip
    p.add_argument(
        "--real-folder", action="store_true",
        help="(--motion) write a real stereo folder (left/, right/, left.yaml, right.yaml, "
        "gt.npz with every hand's joints and side), the format eval --data scores",
    )  # fmt: skip
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--no-masks", action="store_true", help="do not store hand masks")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _motion_frames(settings, count: int, seed: int, rate_hz: float, quiet: bool, hands: int = 1):
    """``count`` consecutive frames of the simulator's motion (seed ``seed``, ``hands`` hands)
    at ``rate_hz``: ``(sides, iterator of MotionFrame)``."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.hand.model import template_hand

    hand = template_hand()
    motion = HandMotion(hand, settings, HandMotionSettings(hands=hands), seed)
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))

    def frames():
        for i in tqdm(range(count), desc="synth motion", disable=quiet, file=sys.stderr):
            yield render_motion_frame(motion, i, i / rate_hz, faces_t)

    return motion.sides, frames()


def _motion_samples(settings, count: int, seed: int, rate_hz: float, quiet: bool, hands: int = 1):
    """``count`` consecutive frames of the simulator's motion (seed ``seed``) at ``rate_hz``,
    as StereoSamples with the right hand's true joints."""
    from stereo_hand_mesh.data.sample import StereoSample

    left_info, right_info = settings.rig.camera_infos()
    _, frames = _motion_frames(settings, count, seed, rate_hz, quiet, hands)
    for i, f in enumerate(frames):
        yield StereoSample(f.left, f.right, left_info, right_info, index=i, joints=f.joints)


def _write_motion_folder(args: argparse.Namespace, settings) -> None:
    """``--motion --real-folder``: the frames and every hand's labels as a real stereo
    folder."""
    import numpy as np

    from stereo_hand_mesh.data.realdata import write_real_stereo_folder

    sides, frames = _motion_frames(
        settings, args.count, args.seed, args.rate, args.quiet, args.hands
    )
    labels = np.full((args.count, len(sides), 21, 3), np.nan)
    pairs = []
    for i, f in enumerate(frames):
        for k, side in enumerate(sides):
            if side in f.joints_by_side:
                labels[i, k] = f.joints_by_side[side]
        pairs.append((f.left, f.right))
    left_info, right_info = settings.rig.camera_infos()
    write_real_stereo_folder(
        args.out, left_info, right_info, pairs, labels, sides,
        doc=f"stereo-hand-mesh {shlex.join(sys.argv[1:])}",
    )  # fmt: skip


def run_synth(args: argparse.Namespace) -> int:
    """Render the split; print where it went and how fast."""
    from tqdm import tqdm

    from stereo_hand_mesh.data.bags import write_stereo_bag
    from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
    from stereo_hand_mesh.data.stereo_set import StereoSetWriter
    from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
    from stereo_hand_mesh.hand.model import template_hand

    if args.count < 1:
        raise ConfigError(f"--count expected >= 1; got {args.count}")
    rig = rig_for_size(args.width, args.height, args.baseline)
    settings = SynthSettings(domain=args.domain, rig=rig, look=args.look)
    left_info, right_info = rig.camera_infos()
    pairs = tqdm(
        iter_synthetic_pairs(settings, args.count, args.seed),
        total=args.count,
        desc=f"synth {args.domain}",
        disable=args.quiet,
        file=sys.stderr,
    )
    start = time.perf_counter()
    if args.motion and not (args.bag or args.real_folder):
        raise ConfigError(
            "--motion expected --bag or --real-folder (a split's pairs are unrelated scenes)"
        )
    if (args.hands != 1 or args.real_folder) and not args.motion:
        raise ConfigError("--hands and --real-folder expected --motion (the simulator's motion)")
    if args.bag and args.real_folder:
        raise ConfigError("synth expected one of --bag and --real-folder; got both")
    if args.real_folder:
        _write_motion_folder(args, settings)
    elif args.bag:
        if args.out.exists():
            raise ConfigError(f"--out {args.out} expected not to exist for a bag; it does")
        if args.motion:
            if args.hands == 2:
                print(
                    "synth: note: a bag carries one hand's ground truth (sim/gt_joints: the "
                    "right hand's); --real-folder keeps both hands' labels"
                )
            samples = _motion_samples(
                settings, args.count, args.seed, args.rate, args.quiet, args.hands
            )
        else:
            samples = (as_stereo_sample(p, i, left_info, right_info) for i, p in enumerate(pairs))
        write_stereo_bag(args.out, samples, args.rate, storage=args.storage)
    else:
        with StereoSetWriter(
            args.out,
            left_info,
            right_info,
            domain=args.domain,
            seed=args.seed,
            generator={"settings": repr(settings)},
            topology_hash=template_hand().topology_hash,
            created_by="stereo-hand-mesh " + shlex.join(sys.argv[1:]),
            overwrite=args.overwrite,
        ) as writer:
            for pair in pairs:
                masks = None if args.no_masks else (pair.mask_left, pair.mask_right)
                writer.add(pair.left, pair.right, masks, pair.annotation)
    elapsed = time.perf_counter() - start
    kind = "real stereo folder" if args.real_folder else "bag" if args.bag else "split"
    print(
        f"wrote {args.count} {args.domain} pairs ({rig.width}x{rig.height}) as a {kind} to "
        f"{args.out} in {elapsed:.1f} s ({args.count / elapsed:.2f} pairs/s)"
    )
    return 0
