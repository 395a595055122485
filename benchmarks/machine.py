"""Description of the machine a benchmark ran on (recorded in every benchmark's JSON)."""

from __future__ import annotations

import os
import platform


def machine_description() -> dict:
    """CPU model, core counts, Python/numpy/torch versions, and the GPU if torch sees one."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import numpy

        desc["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        desc["torch"] = torch.__version__
        desc["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            desc["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return desc
