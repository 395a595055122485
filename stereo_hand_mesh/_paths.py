"""Where the package's data files are: a source checkout, else the installed share/ tree."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["executable_path", "share_path"]

_REPO = Path(__file__).resolve().parents[1]


def share_path(*parts: str) -> Path:
    """``<checkout>/<parts>`` when it exists, else ``<prefix>/share/stereo_hand_mesh/<parts>``."""
    here = _REPO.joinpath(*parts)
    if here.exists():
        return here
    return Path(sys.prefix).joinpath("share", "stereo_hand_mesh", *parts)


def executable_path(name: str) -> Path:
    """A console script of the package: beside this interpreter (venv), on PATH, or in
    ``<prefix>/lib/stereo_hand_mesh`` (colcon install).

    Raises:
        FileNotFoundError: when it is in none of those places.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    lib = Path(sys.prefix) / "lib" / "stereo_hand_mesh" / name
    if lib.is_file():
        return lib
    raise FileNotFoundError(
        f"executable {name} expected beside {sys.executable}, on PATH or in {lib.parent}; "
        "install the package (pip install -e . or colcon build)"
    )
