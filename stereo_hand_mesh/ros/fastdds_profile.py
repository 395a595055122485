"""The Fast DDS profile a node process loads by itself: ``config/fastdds_udp_inputs.xml``.

Fast DDS reads its XML profiles once, when the process's first participant is made (at
``rclpy.init``), from the file named by ``FASTDDS_DEFAULT_PROFILES_FILE``
(``FASTRTPS_DEFAULT_PROFILES_FILE`` before Fast DDS 3). :func:`use_node_profile` names the
package's profile there, for the calling process only, unless the user has chosen a
profile (or no profile) of their own. Call it first thing in a node's ``main()``, before
``rclpy.init``.

Why hand_mesh_node needs it: with Fast DDS's defaults an image sent to a subscriber on the
same computer goes through the publisher's 0.5 MB shared-memory segment, which a 640x480
image (0.9 MB) does not fit; the profile makes the node's subscriptions receive over UDP
instead (the XML file says how, docs/benchmarks.md "Input QoS" what it changes).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

__all__ = [
    "NODE_PROFILE",
    "PROFILE_ENV_VARS",
    "RECEIVE_BUFFER_BYTES",
    "node_profile_path",
    "receive_buffer_note",
    "use_node_profile",
]

#: The profile's file name under ``config/``.
NODE_PROFILE = "fastdds_udp_inputs.xml"

#: The UDP receive buffer the profile asks for, bytes (its ``receiveBufferSize``).
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

#: Environment variables through which Fast DDS is given a profiles file (3.x, 2.x).
PROFILE_ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

#: Files Fast DDS loads from the working directory (besides the one a variable names) unless
#: ``SKIP_DEFAULT_XML_FILE=1``.
_WORKING_DIRECTORY_PROFILES = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")

#: ROS distributions whose Fast DDS (2.x) reads FASTRTPS_DEFAULT_PROFILES_FILE; later
#: ones read FASTDDS_DEFAULT_PROFILES_FILE and warn that the older name is deprecated.
_FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")

#: RMW implementations that read Fast DDS profiles.
_FASTDDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def node_profile_path() -> Path:
    """Where the profile is: the source checkout's or the installed package's ``config/``."""
    from stereo_hand_mesh._paths import share_path

    return share_path("config", NODE_PROFILE)


def use_node_profile(
    environ: MutableMapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """Point this process's Fast DDS at :data:`NODE_PROFILE` unless the user configured it:
    set ``FASTDDS_DEFAULT_PROFILES_FILE`` (and, on Humble, Iron and Jazzy, whose Fast DDS 2
    reads the older name, ``FASTRTPS_DEFAULT_PROFILES_FILE``).

    Left alone when either variable of :data:`PROFILE_ENV_VARS` is set (the user's profile
    wins; to run on Fast DDS's defaults, name a file whose only profile is not a default
    one, as ``benchmarks/bench_input_qos.py`` does), when the working
    directory holds the ``DEFAULT_FASTDDS_PROFILES.xml`` that Fast DDS would load (unless
    ``SKIP_DEFAULT_XML_FILE=1``), when ``RMW_IMPLEMENTATION`` names another middleware, or
    when the file is not installed.

    Args:
        environ: the environment to change; ``os.environ`` when None.
        cwd: the working directory; the process's when None.

    Returns:
        The profile now set, or None when the environment was left as it was.
    """
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in PROFILE_ENV_VARS):
        return None
    if (env.get("RMW_IMPLEMENTATION") or _FASTDDS_RMWS[0]) not in _FASTDDS_RMWS:
        return None
    here = Path.cwd() if cwd is None else cwd
    if env.get("SKIP_DEFAULT_XML_FILE") != "1" and any(
        (here / name).is_file() for name in _WORKING_DIRECTORY_PROFILES
    ):
        return None
    path = node_profile_path()
    if not path.is_file():
        return None
    env[PROFILE_ENV_VARS[0]] = str(path)
    if env.get("ROS_DISTRO") in _FASTDDS_2_DISTROS:
        env[PROFILE_ENV_VARS[1]] = str(path)
    return path


def receive_buffer_note(rmem_max_path: Path = Path("/proc/sys/net/core/rmem_max")) -> str | None:
    """A line for the log when the kernel caps the profile's receive buffer, else None.

    Linux gives a socket at most ``net.core.rmem_max`` (208 kB on a stock Ubuntu); with
    that cap the node receives fewer pairs (docs/benchmarks.md, "Input QoS": 97% instead of
    100% reliable, 10% instead of 100% best effort).
    """
    try:
        cap = int(rmem_max_path.read_text())
    except (OSError, ValueError):
        return None
    if cap >= RECEIVE_BUFFER_BYTES:
        return None
    return (
        f"net.core.rmem_max is {cap} bytes: image subscriptions get a smaller UDP receive "
        f"buffer than the {RECEIVE_BUFFER_BYTES} their Fast DDS profile asks for and may lose "
        f"pairs; raise it with: sudo sysctl -w net.core.rmem_max={RECEIVE_BUFFER_BYTES}"
    )
