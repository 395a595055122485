#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) from PyPI alone.
#
# Used by `make test`, `make demo` and .ci/run. Idempotent: when requirements/venv.txt,
# this script, setup.py and tools/build_tf2_msgs.py are unchanged since the last successful
# run (a stamp file in .venv records their hash) and the key imports work, it does nothing.
#
# Order: torch first, pinned (a torch already in the venv is kept, e.g. a CUDA build), then
# the ROS 2 Kilted wheels and the rest, then this package in editable mode, then tf2_msgs is
# built inside the venv if `import tf2_msgs.msg` fails (it is not on PyPI).
#
# Environment: PYTHON picks the interpreter (default: python3.11 if present, else python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/requirements/venv.txt"
stamp="$venv/.bootstrap-stamp"

log() { printf '[bootstrap] %s\n' "$*"; }

# Cache MediaPipe's wheel and its .tflite files for test/test_model_mediapipe_import.py (cheap when
# cached: only the extracted files' hashes are checked). Not fatal: the test skips without.
fetch_mediapipe() {
    "$venv/bin/python" "$root/tools/import_mediapipe_hands.py" --fetch-only \
        || log "warning: MediaPipe .tflite files not cached (offline?); their tests will skip"
}

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys' >/dev/null 2>&1; then
            echo "$cand"; return
        fi
    done
    echo "no python3 found" >&2; exit 1
}

want_hash="$(cat "$req" "$root/tools/bootstrap.sh" "$root/setup.py" \
    "$root/tools/build_tf2_msgs.py" 2>/dev/null | sha256sum | cut -c1-16)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want_hash" ]] \
    && "$venv/bin/python" -c 'import rclpy, tf2_msgs.msg, torch, stereo_hand_mesh' 2>/dev/null
then
    log "environment up to date ($venv)"
    fetch_mediapipe
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    py="$(pick_python)"
    ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    case "$ver" in
        3.10|3.11|3.12) ;;
        *) echo "[bootstrap] Python 3.10-3.12 required; $py is $ver (set PYTHON=...)" >&2
           exit 1 ;;
    esac
    log "creating $venv with $py ($ver)"
    "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)

torch_pin="$(grep -E '^torch==' "$req")"
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    log "keeping installed torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
else
    log "installing $torch_pin"
    "${pip[@]}" "$torch_pin" 2>&1 | grep -v "is ignored" || true
fi

log "installing pinned requirements (ROS 2 Kilted wheels, numpy, opencv, ...)"
grep -v -E '^torch==' "$req" > "$venv/.requirements-no-torch.txt"
"${pip[@]}" -r "$venv/.requirements-no-torch.txt" 2>&1 | grep -v 'is ignored' || true
"$venv/bin/python" -c 'import rclpy, numpy, cv2' \
    || { echo "[bootstrap] pinned requirements failed to install" >&2; exit 1; }

log "installing stereo_hand_mesh (editable)"
"${pip[@]}" --no-deps --no-build-isolation -e "$root" 2>&1 | grep -v 'is ignored' || true

if ! "$venv/bin/python" -c 'import tf2_msgs.msg' 2>/dev/null; then
    log "tf2_msgs not importable: building it inside the venv"
    "$venv/bin/python" "$root/tools/build_tf2_msgs.py"
fi

"$venv/bin/python" -c 'import rclpy, tf2_msgs.msg, torch, stereo_hand_mesh' \
    || { echo "[bootstrap] final import check failed" >&2; exit 1; }
echo "$want_hash" > "$stamp"
fetch_mediapipe
log "done"
