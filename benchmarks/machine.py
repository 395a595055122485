"""Description of the machine a benchmark ran on: the package's one implementation."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_hand_mesh._machine import machine_description, percentile

__all__ = ["machine_description", "percentile"]
