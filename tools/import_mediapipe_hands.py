#!/usr/bin/env python3
"""Import MediaPipe's hand networks (mediapipe 0.10.21 wheel, Apache-2.0) into models/.

Steps, each reproducible:

1. ``pip download mediapipe==0.10.21 --no-deps`` (the cp311 manylinux_2_28 x86_64 wheel,
   whatever this machine is: only its ``.tflite`` files are used) into the cache
   (default ``~/.cache/stereo_hand_mesh/wheels``; an existing file is reused).
2. Check the wheel's SHA-256 against the pinned value; any other file is refused (exit 1).
3. Extract the four ``.tflite`` files (hashes pinned too) into the cache.
4. Convert each into ``models/<name>.npz`` and ``models/<name>.onnx``
   (:func:`stereo_hand_mesh.model.mediapipe_hands.convert_mediapipe_net`).
5. Write ``models/mediapipe/LICENSE`` (the wheel's own licence file), ``NOTICE`` and
   ``PROVENANCE.json`` (wheel and tflite hashes, each written file's hash).

Modes:
    (default)      fetch, convert, write models/ and models/mediapipe/.
    --fetch-only   only steps 1-3 (used by tools/bootstrap.sh so tests find the .tflite files;
                   nothing is downloaded when the extracted files are present and intact).
    --check        convert into a temporary folder and compare with the shipped files: every
                   .npz array and graph, every ONNX initializer, node and metadata entry, and
                   the hashes in PROVENANCE.json. Exit 1 on any difference.

Usage:
    .venv/bin/python tools/import_mediapipe_hands.py [--check | --fetch-only]
        [--wheel PATH] [--cache-dir DIR] [--models-dir DIR]

Exit status: 0 success, 1 refused (hash mismatch, download failed, check failed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stereo_hand_mesh.errors import ModelFileError  # noqa: E402
from stereo_hand_mesh.model.mediapipe_hands import (  # noqa: E402
    MEDIAPIPE_NETS,
    MEDIAPIPE_VERSION,
    MEDIAPIPE_WHEEL,
    MEDIAPIPE_WHEEL_SHA256,
    convert_mediapipe_net,
    default_mediapipe_cache_dir,
    sha256_of_file,
    tflite_cache_path,
)

LICENSE_MEMBER = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"


class ImportRefusedError(Exception):
    """The import cannot go on; the message says why (printed, exit status 1)."""


def log(msg: str) -> None:
    print(f"[import_mediapipe_hands] {msg}", flush=True)


def fetch_wheel(cache_dir: Path, wheel: Path | None) -> Path:
    """The pinned wheel, downloaded into ``cache_dir/wheels`` unless present; hash checked."""
    if wheel is None:
        wheel_dir = cache_dir / "wheels"
        wheel = wheel_dir / MEDIAPIPE_WHEEL
        if not wheel.is_file():
            wheel_dir.mkdir(parents=True, exist_ok=True)
            log(f"downloading mediapipe=={MEDIAPIPE_VERSION} (--no-deps) into {wheel_dir}")
            cmd = [
                sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}",
                "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                "--disable-pip-version-check", "-q", "-d", str(wheel_dir),
            ]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or not wheel.is_file():
                raise ImportRefusedError(
                    f"pip download of mediapipe=={MEDIAPIPE_VERSION} expected {wheel}; got exit "
                    f"status {done.returncode}: {done.stderr.strip()[-400:]}"
                )
        else:
            log(f"reusing cached wheel {wheel}")
    if not wheel.is_file():
        raise ImportRefusedError(f"wheel expected at {wheel}; it does not exist")
    digest = sha256_of_file(wheel)
    if digest != MEDIAPIPE_WHEEL_SHA256:
        raise ImportRefusedError(
            f"wheel {wheel} expected sha256 {MEDIAPIPE_WHEEL_SHA256} ({MEDIAPIPE_WHEEL}); got "
            f"{digest}. Refusing to import weights from an unverified file."
        )
    return wheel


def cached_tflites_intact(cache_dir: Path) -> bool:
    """True when all four extracted ``.tflite`` files are in the cache with their hashes."""
    for net in MEDIAPIPE_NETS.values():
        path = tflite_cache_path(net, cache_dir)
        if not path.is_file() or sha256_of_file(path) != net.tflite_sha256:
            return False
    return True


def extract_tflites(wheel: Path, cache_dir: Path) -> dict[str, Path]:
    """Extract the four ``.tflite`` files (hash-checked) into the cache; name -> path."""
    paths = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, net in MEDIAPIPE_NETS.items():
            dest = tflite_cache_path(net, cache_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            with zf.open(net.tflite_path) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            digest = sha256_of_file(tmp)
            if digest != net.tflite_sha256:
                tmp.unlink()
                raise ImportRefusedError(
                    f"{net.tflite_path} in {wheel} expected sha256 {net.tflite_sha256}; got "
                    f"{digest}"
                )
            os.replace(tmp, dest)
            paths[name] = dest
    return paths


def fetch(cache_dir: Path, wheel: Path | None) -> tuple[Path | None, dict[str, Path]]:
    """Wheel (None when the extracted files were already intact) and the ``.tflite`` paths."""
    if wheel is None and cached_tflites_intact(cache_dir):
        log(f"cached .tflite files intact under {cache_dir}")
        return None, {n: tflite_cache_path(net, cache_dir) for n, net in MEDIAPIPE_NETS.items()}
    wheel_path = fetch_wheel(cache_dir, wheel)
    return wheel_path, extract_tflites(wheel_path, cache_dir)


def convert_all(tflites: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """Convert every network into ``out_dir``; output file name -> path."""
    written = {}
    for name, net in MEDIAPIPE_NETS.items():
        log(f"converting {net.tflite_path} -> {name}.npz, {name}.onnx")
        npz, onnx_path = convert_mediapipe_net(net, tflites[name], out_dir)
        written[npz.name] = npz
        written[onnx_path.name] = onnx_path
    return written


def license_text(wheel: Path | None, cache_dir: Path) -> str:
    """The wheel's licence file (Apache-2.0 plus its third-party notes), from the wheel."""
    if wheel is None:
        wheel = fetch_wheel(cache_dir, None)
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(LICENSE_MEMBER).decode("utf-8")
        except KeyError:
            raise ImportRefusedError(f"{wheel} expected a licence file {LICENSE_MEMBER}") from None


NOTICE = """\
MediaPipe hand networks, converted

Files of models/ holding weights taken from the mediapipe {version} wheel
  {wheel}
  sha256 {wheel_sha}
published by The MediaPipe Authors (Google, https://github.com/google/mediapipe) under the
Apache License 2.0. LICENSE beside this file is the licence file of the wheel's dist-info.

{files}
Modifications: the float16 TFLite flatbuffers were parsed and converted by
tools/import_mediapipe_hands.py of stereo_hand_mesh. The .npz files store the weights
unchanged (float16, TFLite layout) with a rewritten graph description; the .onnx files were
exported from the torch module built from them (weights re-laid out NHWC -> NCHW, stored
float16, computed float32). No weight was trained, fine-tuned or changed in value.
PROVENANCE.json lists the source paths and the SHA-256 of every input and output file.
"""


def write_provenance(models_dir: Path, written: dict[str, Path], license_src: str) -> None:
    """LICENSE, NOTICE and PROVENANCE.json under ``models_dir/mediapipe``."""
    meta_dir = models_dir / "mediapipe"
    meta_dir.mkdir(parents=True, exist_ok=True)
    (meta_dir / "LICENSE").write_text(license_src, encoding="utf-8")
    lines = ""
    for name, net in MEDIAPIPE_NETS.items():
        lines += f"  {name}.npz, {name}.onnx\n    <- {net.tflite_path}\n"
    (meta_dir / "NOTICE").write_text(
        NOTICE.format(
            version=MEDIAPIPE_VERSION,
            wheel=MEDIAPIPE_WHEEL,
            wheel_sha=MEDIAPIPE_WHEEL_SHA256,
            files=lines,
        ),
        encoding="utf-8",
    )
    provenance = {
        "wheel": {
            "name": "mediapipe",
            "version": MEDIAPIPE_VERSION,
            "file": MEDIAPIPE_WHEEL,
            "sha256": MEDIAPIPE_WHEEL_SHA256,
            "license": "Apache-2.0",
            "license_file": LICENSE_MEMBER,
        },
        "converter": "tools/import_mediapipe_hands.py",
        "networks": {
            name: {
                "tflite_path": net.tflite_path,
                "tflite_sha256": net.tflite_sha256,
                "outputs": {
                    f"models/{fname}": sha256_of_file(written[fname])
                    for fname in (f"{name}.npz", f"{name}.onnx")
                },
            }
            for name, net in MEDIAPIPE_NETS.items()
        },
    }
    text = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    (meta_dir / "PROVENANCE.json").write_text(text, encoding="utf-8")


def compare_npz(shipped: Path, fresh: Path) -> list[str]:
    """Differences between two ``.npz`` files of the same network (empty when equal)."""
    import numpy as np

    problems = []
    with np.load(shipped, allow_pickle=False) as a, np.load(fresh, allow_pickle=False) as b:
        if sorted(a.files) != sorted(b.files):
            return [f"{shipped.name}: entries differ ({len(a.files)} vs {len(b.files)})"]
        for key in a.files:
            x, y = a[key], b[key]
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                problems.append(f"{shipped.name}: entry {key} differs")
    return problems


def compare_onnx(shipped: Path, fresh: Path) -> list[str]:
    """Differences between two ONNX files: initializers, node types/wiring, metadata."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    a, b = onnx.load(str(shipped)), onnx.load(str(fresh))
    problems = []
    ia = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in b.graph.initializer}
    if sorted(ia) != sorted(ib):
        problems.append(f"{shipped.name}: initializer names differ")
    else:
        for key, x in ia.items():
            y = ib[key]
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                problems.append(f"{shipped.name}: initializer {key} differs")
    nodes_a = [(n.op_type, list(n.input), list(n.output)) for n in a.graph.node]
    nodes_b = [(n.op_type, list(n.input), list(n.output)) for n in b.graph.node]
    if nodes_a != nodes_b:
        problems.append(f"{shipped.name}: graph nodes differ")
    meta_a = {e.key: e.value for e in a.metadata_props}
    meta_b = {e.key: e.value for e in b.metadata_props}
    if meta_a != meta_b:
        problems.append(f"{shipped.name}: metadata differs")
    return problems


def check(models_dir: Path, tflites: dict[str, Path]) -> list[str]:
    """Re-convert into a temporary folder and compare with the shipped files."""
    problems = []
    prov_path = models_dir / "mediapipe" / "PROVENANCE.json"
    provenance = json.loads(prov_path.read_text()) if prov_path.is_file() else None
    if provenance is None:
        problems.append(f"{prov_path} missing")
    for name in ("LICENSE", "NOTICE"):
        if not (models_dir / "mediapipe" / name).is_file():
            problems.append(f"{models_dir / 'mediapipe' / name} missing")
    with tempfile.TemporaryDirectory(prefix="mp_check_") as tmp:
        fresh = convert_all(tflites, Path(tmp))
        for fname, fresh_path in sorted(fresh.items()):
            shipped = models_dir / fname
            if not shipped.is_file():
                problems.append(f"{shipped} missing")
                continue
            if fname.endswith(".npz"):
                problems += compare_npz(shipped, fresh_path)
            else:
                problems += compare_onnx(shipped, fresh_path)
            if provenance is not None:
                stem = fname.rsplit(".", 1)[0]
                recorded = provenance["networks"][stem]["outputs"].get(f"models/{fname}")
                if recorded != sha256_of_file(shipped):
                    problems.append(f"{shipped}: sha256 differs from PROVENANCE.json")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify the shipped files")
    mode.add_argument("--fetch-only", action="store_true", help="cache wheel and .tflite only")
    parser.add_argument(
        "--wheel", type=Path, default=None, help="use this wheel file instead of downloading"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default $STEREO_HAND_MESH_CACHE or ~/.cache/stereo_hand_mesh)",
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or default_mediapipe_cache_dir()
    try:
        wheel, tflites = fetch(cache_dir, args.wheel)
        if args.fetch_only:
            log(f"wheel and .tflite files cached under {cache_dir}")
            return 0
        if args.check:
            problems = check(args.models_dir, tflites)
            for p in problems:
                log(f"MISMATCH {p}")
            log("check passed" if not problems else f"check failed: {len(problems)} problems")
            return 0 if not problems else 1
        args.models_dir.mkdir(parents=True, exist_ok=True)
        written = convert_all(tflites, args.models_dir)
        write_provenance(args.models_dir, written, license_text(wheel, cache_dir))
        for path in sorted(written.values()):
            log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
        return 0
    except (ImportRefusedError, ModelFileError) as err:
        print(f"[import_mediapipe_hands] error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
