"""The ``stereo-hand-mesh`` command and every application built on the library layers.

One module per group of subcommands, each with an ``add_*_parser(s)`` that registers its
sub-parsers and returns the functions that run them: :mod:`.synth` (``synth``), :mod:`.train`
(``pretrain``, ``adapt``, ``eval``), :mod:`.runtime` (``export``, ``infer``, ``bench``; the
pipeline benchmark itself is :mod:`.bench`), :mod:`.demo` (``demo``) and :mod:`.calibrate`
(``calibrate``), :mod:`.play` (``play``: a stereo source published as a camera);
:mod:`.options` holds options several of them share. This package sits
on top of the layers (DESIGN.md, "Architecture"): it may import any of them, and none of them
imports it (``test/test_architecture.py``). Heavy imports (torch, rclpy) happen inside the
subcommand, so ``stereo-hand-mesh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from stereo_hand_mesh import __version__
from stereo_hand_mesh.errors import StereoHandMeshError

__all__ = ["build_parser", "main"]

Runner = Callable[[argparse.Namespace], int]

#: Subcommands the product will have (DESIGN.md) that are not built yet, with the issue that
#: delivers each. ``stereo-hand-mesh <name>`` says so plainly instead of pretending.
_PLANNED: dict[str, str] = {}


def _not_built(name: str) -> Runner:
    def run(_: argparse.Namespace) -> int:
        print(
            f"stereo-hand-mesh {name}: not available yet: {_PLANNED[name]} is not built in "
            f"this version ({__version__}). Nothing was run.",
            file=sys.stderr,
        )
        return 3

    return run


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """Build the argument parser and the map from subcommand name to its runner."""
    parser = argparse.ArgumentParser(
        prog="stereo-hand-mesh",
        description="Absolute metric 3D hand meshes from a stereo camera (ROS 2 package tools).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    from stereo_hand_mesh.cli.synth import add_synth_parser, run_synth

    add_synth_parser(sub)
    runners["synth"] = run_synth
    from stereo_hand_mesh.cli.train import add_training_parsers

    runners |= add_training_parsers(sub)
    from stereo_hand_mesh.cli.runtime import add_runtime_parsers

    runners |= add_runtime_parsers(sub)
    from stereo_hand_mesh.cli.demo import add_demo_parser

    runners |= add_demo_parser(sub)
    from stereo_hand_mesh.cli.calibrate import add_calibrate_parser

    runners |= add_calibrate_parser(sub)
    from stereo_hand_mesh.cli.play import add_play_parser

    runners |= add_play_parser(sub)
    for name, what in _PLANNED.items():
        sub.add_parser(name, help=f"{what} [not built yet]")
        runners[name] = _not_built(name)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stereo-hand-mesh`` console script."""
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return runners[args.command](args)
    except StereoHandMeshError as err:
        print(f"stereo-hand-mesh {args.command}: error: {err}", file=sys.stderr)
        return 1
