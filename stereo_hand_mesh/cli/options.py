"""Command-line options that several subcommands and benchmarks share."""

from __future__ import annotations

import argparse

from stereo_hand_mesh.errors import ConfigError

__all__ = ["add_frames_argument", "frame_slice_argument"]


def frame_slice_argument(text: str) -> slice | None:
    """argparse ``type`` of ``--frames START:STOP``
    (:func:`~stereo_hand_mesh.data.sources.parse_frame_slice`); a bad value is a usage error
    whose message says what was expected."""
    # Imported here: the data layer takes a quarter of a second, and ``--help`` stays fast.
    from stereo_hand_mesh.data.sources import parse_frame_slice

    try:
        return parse_frame_slice(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_frames_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--frames START:STOP`` (default: every pair) to ``parser`` (``args.frames``: a
    slice or None)."""
    parser.add_argument(
        "--frames",
        type=frame_slice_argument,
        default=None,
        metavar="START:STOP",
        help="use only the pairs at these positions of the source (0-based, STOP excluded, "
        "either side may be empty: 0:38, 38:); default: all",
    )
