"""Description of the machine a benchmark ran on (recorded in every benchmark's JSON), and
the percentile helper the benchmarks share.

Library versions are read from the installed distributions' metadata, so describing the
machine imports neither torch nor onnxruntime; torch's threads and GPU are added only when
torch is already imported by the caller.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["machine_description", "percentile"]


def machine_description() -> dict[str, Any]:
    """CPU model, core counts, Python and library versions, torch threads and GPU."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for dist in ("numpy", "torch", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            desc[dist] = metadata.version(dist)
    torch = sys.modules.get("torch")
    if torch is not None:
        desc["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            desc["gpu"] = torch.cuda.get_device_name(0)
    return desc


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 1] of a non-empty list."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
