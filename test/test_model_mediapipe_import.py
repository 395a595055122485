"""Tests of the MediaPipe import: TFLite reader, torch executor, shipped .npz/.onnx, tool.

The shipped networks (``models/hand_landmark_*``, ``models/palm_detection_*``) are checked
against the reference TFLite interpreter (``ai-edge-litert``) running the original
``.tflite`` files, which ``tools/bootstrap.sh`` caches via
``tools/import_mediapipe_hands.py --fetch-only``. Crops: a real hand from
``../shared/realdata/tabletop_a`` when that folder exists (evaluation data, read in place,
never copied), a hand rendered by the project's synthesizer, a black crop and noise. The
executor's operators are also checked on small hand-built graphs against naive NHWC loops.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_hand_mesh.errors import ModelFileError
from stereo_hand_mesh.model.mediapipe_hands import (
    MEDIAPIPE_NETS,
    MEDIAPIPE_WHEEL_SHA256,
    MediaPipeNet,
    sha256_of_file,
    tflite_cache_path,
)
from stereo_hand_mesh.model.tflite_graph import (
    TFLiteGraphNet,
    load_tflite_graph_net,
    read_tflite_graph_npz,
    save_tflite_graph_npz,
)
from stereo_hand_mesh.model.tflite_reader import (
    TFLiteGraph,
    TFLiteOperator,
    TFLiteTensor,
    read_tflite_graph,
)
from stereo_hand_mesh.runtime.keypoint_info import KEYPOINT_METADATA_KEY, read_keypoint_model_info

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
TOOL = REPO / "tools" / "import_mediapipe_hands.py"
REALDATA = REPO.parent / "shared" / "realdata" / "tabletop_a"

#: Largest allowed difference to the reference interpreter: keypoints (landmarks x, y, z
#: and palm regressors), pixels; scores (presence, handedness probabilities, palm logits);
#: world landmarks, metres.
KEYPOINT_ATOL_PX = 1e-3
SCORE_ATOL = 1e-4
WORLD_ATOL_M = 1e-5
#: The palm outputs (regressors up to ~170 px, score logits down to about -40) also get 1e-5
#: of their magnitude: float32 rounding alone moves them that much. On a black crop the
#: interpreter's own two kernel sets (XNNPACK and BUILTIN_REF) differ by 1.4e-3 px, and each
#: is 6-8e-4 px from a float64 run of our graph.
PALM_RTOL = 1e-5

NAMES = sorted(MEDIAPIPE_NETS)

#: Operators of each network after folding the float16 DEQUANTIZE ops (found by the reader).
EXPECTED_OPS = {
    "hand_landmark_lite": {
        "ADD": 10, "CONV_2D": 31, "DEPTHWISE_CONV_2D": 16, "FULLY_CONNECTED": 4,
        "LOGISTIC": 2, "MAX_POOL_2D": 1, "MEAN": 1,
    },
    "hand_landmark_full": {
        "ADD": 9, "CONV_2D": 31, "DEPTHWISE_CONV_2D": 16, "FULLY_CONNECTED": 4,
        "LOGISTIC": 2, "MEAN": 1,
    },
    "palm_detection_lite": {
        "ADD": 25, "CONCATENATION": 2, "CONV_2D": 30, "DEPTHWISE_CONV_2D": 23,
        "MAX_POOL_2D": 4, "PAD": 3, "PRELU": 26, "RESHAPE": 4, "RESIZE_BILINEAR": 2,
    },
    "palm_detection_full": {
        "ADD": 30, "CONCATENATION": 2, "CONV_2D": 35, "DEPTHWISE_CONV_2D": 28,
        "MAX_POOL_2D": 4, "PAD": 3, "PRELU": 31, "RESHAPE": 4, "RESIZE_BILINEAR": 2,
    },
}  # fmt: skip


# --- fixtures ------------------------------------------------------------------------------


def _tflite(net: MediaPipeNet) -> Path:
    """The cached original .tflite of ``net``; skips the test when it is not cached."""
    path = tflite_cache_path(net)
    if not path.is_file():
        pytest.skip(
            f"{path} not cached: run tools/bootstrap.sh (or tools/import_mediapipe_hands.py "
            "--fetch-only, which downloads the mediapipe wheel with pip)"
        )
    return path


def _interpreter(path: Path):
    """The reference TFLite interpreter on ``path``; skips when ai-edge-litert is absent."""
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter",
        reason="ai-edge-litert (the reference TFLite interpreter) is not installed",
    )
    interp = litert.Interpreter(model_path=str(path), num_threads=2)
    interp.allocate_tensors()
    return interp


def _reference(interp, crops_nchw: np.ndarray) -> list[np.ndarray]:
    """Run the interpreter crop by crop; outputs in the file's order, batched."""
    inp = interp.get_input_details()[0]["index"]
    # The interpreter lists outputs in its own order; the file's order is by tensor name
    # (Identity, Identity_1, ...), checked against the graph below.
    outs = sorted(interp.get_output_details(), key=lambda d: d["name"])
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for crop in crops_nchw:
        interp.set_tensor(inp, np.ascontiguousarray(crop.transpose(1, 2, 0)[None]))
        interp.invoke()
        for i, d in enumerate(outs):
            results[i].append(interp.get_tensor(d["index"])[0].copy())
    return [np.stack(r) for r in results]


def _crop(image: np.ndarray, uv: np.ndarray, size: int, scale: float, rotate: bool) -> np.ndarray:
    """(3, S, S) float32 RGB in [0, 1]: a square around the joints ``uv`` (21, 2) px.

    The side is ``scale`` times the joints' extent; with ``rotate`` the wrist -> middle MCP
    direction points up (how MediaPipe crops for the landmark network).
    """
    import cv2

    known = uv[np.isfinite(uv).all(axis=1)]
    centre = (known.min(axis=0) + known.max(axis=0)) / 2
    side = scale * float((known.max(axis=0) - known.min(axis=0)).max())
    angle = 0.0
    if rotate:
        d = uv[9] - uv[0]
        angle = float(np.degrees(np.arctan2(d[0], -d[1])))
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, size / side)
    m[:, 2] += size / 2 - centre
    out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR)
    return (out.astype(np.float32) / 255.0).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def rendered_hand() -> tuple[np.ndarray, np.ndarray]:
    """A hand rendered by the project's synthesizer: (H, W, 3) uint8 RGB and (21, 2) px."""
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs

    pair = next(iter_synthetic_pairs(SynthSettings(domain="target"), 1, seed=7))
    return pair.left, pair.annotation["uv_left"].astype(np.float64)


@pytest.fixture(scope="module")
def real_hand() -> tuple[np.ndarray, np.ndarray] | None:
    """A real right hand of tabletop_a (read in place) and its labelled joints, or None."""
    if not (REALDATA / "gt.npz").is_file():
        return None
    import cv2

    gt = np.load(REALDATA / "gt.npz")
    i = int(np.flatnonzero(gt["inside"])[0])
    files = sorted((REALDATA / "left").glob("*.png"))
    image = cv2.cvtColor(cv2.imread(str(files[i])), cv2.COLOR_BGR2RGB)
    return image, gt["uv_left"][i].astype(np.float64)


def _crops(
    net: MediaPipeNet, rendered: tuple[np.ndarray, np.ndarray], real: object
) -> tuple[np.ndarray, list[str]]:
    """(B, 3, S, S) test crops for ``net`` and their names."""
    s = net.input_size
    landmark = net.kind == "hand_landmark"
    scale, rotate = (1.6, True) if landmark else (2.5, False)
    crops = [_crop(*rendered, s, scale, rotate)]
    names = ["rendered hand"]
    if real is not None:
        crops.append(_crop(*real, s, scale, rotate))
        names.append("real hand")
    rng = np.random.default_rng(3)
    crops += [np.zeros((3, s, s), np.float32), rng.random((3, s, s), dtype=np.float32)]
    names += ["black", "noise"]
    return np.stack(crops), names


def _tolerance(output: str, ref: np.ndarray) -> np.ndarray | float:
    """Allowed |difference| to the reference, elementwise."""
    if output == "regressors":
        return KEYPOINT_ATOL_PX + PALM_RTOL * np.abs(ref)
    if output == "scores":
        return SCORE_ATOL + PALM_RTOL * np.abs(ref)
    if output == "landmarks":
        return KEYPOINT_ATOL_PX
    if output == "world_landmarks":
        return WORLD_ATOL_M
    return SCORE_ATOL


# --- the reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reader_finds_the_expected_operators(name: str) -> None:
    net = MEDIAPIPE_NETS[name]
    path = _tflite(net)
    assert sha256_of_file(path) == net.tflite_sha256
    graph = read_tflite_graph(path)
    assert graph.op_counts() == EXPECTED_OPS[name]
    assert graph.tensors[graph.inputs[0]].shape == (1, net.input_size, net.input_size, 3)
    # Float16 weights behind DEQUANTIZE are kept float16; nothing else is stored.
    assert {str(a.dtype) for a in graph.constants.values()} == {"float16"}
    assert all(graph.tensors[j].dtype == "float32" for j in graph.constants)
    # The file's output order is the order of the output tensors' names.
    names = [graph.tensors[j].name for j in graph.outputs]
    assert names == sorted(names) and names[0] == "Identity"


@pytest.mark.parametrize("name", NAMES)
def test_which_outputs_are_sigmoided(name: str) -> None:
    """Presence and handedness end in a LOGISTIC op; palm scores and coordinates do not."""
    net = MEDIAPIPE_NETS[name]
    graph = read_tflite_graph(_tflite(net))
    producer = {op.outputs[0]: op.op for op in graph.operators}
    ends_in_sigmoid = {
        out: producer[j] == "LOGISTIC" for out, j in zip(net.outputs, graph.outputs)
    }
    expected = {out: net.activations.get(out) == "none" for out in net.outputs}
    assert ends_in_sigmoid == expected


def test_reader_names_an_unsupported_operator(tmp_path: Path) -> None:
    """LOGISTIC's operator code rewritten to SOFTMAX (25) in a real file."""
    import tflite

    src = _tflite(MEDIAPIPE_NETS["hand_landmark_lite"])
    data = bytearray(src.read_bytes())
    model = tflite.Model.GetRootAsModel(data, 0)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == 14:  # LOGISTIC
            tab = code._tab
            for slot, size in ((4, 1), (10, 4)):  # deprecated_builtin_code, builtin_code
                field = tab.Offset(slot)
                if field:
                    data[tab.Pos + field : tab.Pos + field + size] = (25).to_bytes(size, "little")
    bad = tmp_path / "softmax.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"SOFTMAX.*softmax\.tflite|softmax\.tflite.*SOFTMAX"):
        read_tflite_graph(bad)


def test_reader_refuses_missing_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nothere\.tflite"):
        read_tflite_graph(tmp_path / "nothere.tflite")
    src = _tflite(MEDIAPIPE_NETS["palm_detection_lite"])
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(src.read_bytes()[:50_000])
    with pytest.raises(ModelFileError, match=r"cut\.tflite"):
        read_tflite_graph(cut)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ModelFileError, match=r"junk\.tflite.*TFL3"):
        read_tflite_graph(junk)


# --- parity with the reference interpreter -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_torch_and_onnxruntime_match_the_reference_interpreter(
    name: str, rendered_hand: tuple[np.ndarray, np.ndarray], real_hand: object
) -> None:
    import onnxruntime as ort

    net = MEDIAPIPE_NETS[name]
    interp = _interpreter(_tflite(net))
    crops, crop_names = _crops(net, rendered_hand, real_hand)
    reference = _reference(interp, crops)

    module = load_tflite_graph_net(MODELS / f"{name}.npz")
    with torch.no_grad():
        ours = module(torch.from_numpy(crops))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(MODELS / f"{name}.onnx"), opts, ["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(net.outputs)
    onnx_out = session.run(None, {"image": crops})

    for k, out in enumerate(net.outputs):
        ref = reference[k]
        for runtime, got in (("torch", ours[out].numpy()), ("onnxruntime", onnx_out[k])):
            assert got.shape == ref.shape, f"{name} {runtime} {out}: {got.shape} vs {ref.shape}"
            diff = np.abs(got - ref)
            excess = diff - _tolerance(out, ref)
            worst = np.unravel_index(int(np.argmax(excess)), diff.shape)
            assert excess.max() <= 0.0, (
                f"{name} {runtime} {out}: |diff| {diff[worst]:.3g} at {worst} (crop "
                f"{crop_names[worst[0]]!r}, value {ref[worst]:.4g}) over the tolerance; "
                f"max |diff| {diff.max():.3g}"
            )


def test_scores_on_a_real_hand_and_a_black_crop(real_hand: object) -> None:
    """Presence is a probability (high on a hand, low on black); palm scores are logits."""
    if real_hand is None:
        pytest.skip(f"{REALDATA} not present (evaluation data of this workspace)")
    lm = load_tflite_graph_net(MODELS / "hand_landmark_full.npz")
    palm = load_tflite_graph_net(MODELS / "palm_detection_full.npz")
    hand224 = _crop(*real_hand, 224, 1.6, True)
    crops = torch.from_numpy(np.stack([hand224, np.zeros_like(hand224), hand224[:, :, ::-1]]))
    with torch.no_grad():
        out = lm(crops)
        scores = palm(torch.from_numpy(_crop(*real_hand, 192, 2.5, False)[None]))["scores"]
    presence = out["presence"][:, 0].numpy()
    handedness = out["handedness"][:, 0].numpy()
    assert presence[0] > 0.9 and presence[1] < 0.1, presence
    # A right hand in an unmirrored image: MediaPipe's "Left" (label 0), mirrored: "Right".
    assert handedness[0] > 0.9 and handedness[2] < 0.1, handedness
    assert scores.max() > 0.0 and scores.min() < -5.0  # logits, not probabilities


# --- shipped files, metadata, .npz loading --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shipped_onnx_metadata(name: str) -> None:
    import onnx

    net = MEDIAPIPE_NETS[name]
    info = read_keypoint_model_info(MODELS / f"{name}.onnx")
    assert info["kind"] == net.kind and info["variant"] == net.variant
    assert info["input_size"] == net.input_size
    assert info["input_layout"] == "NCHW" and info["input_range"] == [0.0, 1.0]
    assert info["outputs"] == list(net.outputs)
    assert info["activations"] == net.activations
    source = info["source"]
    assert source["wheel"] == "mediapipe==0.10.21"
    assert source["wheel_sha256"] == MEDIAPIPE_WHEEL_SHA256
    assert source["tflite_path"] == net.tflite_path
    assert source["tflite_sha256"] == net.tflite_sha256

    proto = onnx.load(str(MODELS / f"{name}.onnx"), load_external_data=False)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "image" and dims == ["batch", 3, net.input_size, net.input_size]
    assert [o.name for o in proto.graph.output] == list(net.outputs)
    # The .npz carries the same description.
    _, names, npz_info = read_tflite_graph_npz(MODELS / f"{name}.npz")
    assert names == net.outputs and npz_info == info


def test_provenance_and_licence_files() -> None:
    folder = MODELS / "mediapipe"
    assert "Apache License" in (folder / "LICENSE").read_text()
    notice = (folder / "NOTICE").read_text()
    assert "tools/import_mediapipe_hands.py" in notice and MEDIAPIPE_WHEEL_SHA256 in notice
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    assert prov["wheel"]["sha256"] == MEDIAPIPE_WHEEL_SHA256
    for name, net in MEDIAPIPE_NETS.items():
        entry = prov["networks"][name]
        assert entry["tflite_sha256"] == net.tflite_sha256
        for rel, digest in entry["outputs"].items():
            assert sha256_of_file(REPO / rel) == digest, f"{rel} differs from PROVENANCE.json"


def test_keypoint_info_needs_neither_torch_nor_ros() -> None:
    code = (
        "import sys; from stereo_hand_mesh.runtime.keypoint_info import "
        "read_keypoint_model_info as r; "
        f"info = r({str(MODELS / 'palm_detection_lite.onnx')!r}); "
        "print(info['kind'], any(m in sys.modules for m in ('torch', 'rclpy', 'onnxruntime')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["palm_detection", "False"]


def test_keypoint_info_errors(tmp_path: Path) -> None:
    import onnx

    with pytest.raises(ModelFileError, match=r"absent\.onnx"):
        read_keypoint_model_info(tmp_path / "absent.onnx")
    bare = onnx.load(str(MODELS / "palm_detection_lite.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match=rf"bare\.onnx.*{KEYPOINT_METADATA_KEY}"):
        read_keypoint_model_info(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ModelFileError, match=r"junk\.onnx"):
        read_keypoint_model_info(tmp_path / "junk.onnx")


def test_npz_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"missing\.npz"):
        load_tflite_graph_net(tmp_path / "missing.npz")
    good = (MODELS / "hand_landmark_lite.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.npz"):
        load_tflite_graph_net(tmp_path / "truncated.npz")
    (tmp_path / "corrupt.npz").write_bytes(good[:1000] + b"\x00" * 5000 + good[6000:])
    with pytest.raises(ModelFileError, match=r"corrupt\.npz"):
        load_tflite_graph_net(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ModelFileError, match=r"other\.npz.*graph_json"):
        load_tflite_graph_net(tmp_path / "other.npz")
    # An object array would need pickle: refused, not executed.
    np.savez(tmp_path / "pickled.npz", graph_json=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match=r"pickled\.npz"):
        load_tflite_graph_net(tmp_path / "pickled.npz")


# --- the import tool -----------------------------------------------------------------------


def _run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300
    )


def test_import_refuses_a_wheel_with_the_wrong_hash(tmp_path: Path) -> None:
    fake = tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    fake.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: valid, but not the wheel
    for mode in (["--fetch-only"], []):
        done = _run_tool(
            *mode, "--wheel", str(fake), "--cache-dir", str(tmp_path / "c"),
            "--models-dir", str(tmp_path / "m"),
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert MEDIAPIPE_WHEEL_SHA256 in done.stderr and str(fake) in done.stderr
        assert sha256_of_file(fake) in done.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "c" / "mediapipe-0.10.21").exists()


def test_check_mode_passes_on_the_shipped_files() -> None:
    for net in MEDIAPIPE_NETS.values():
        _tflite(net)
    done = _run_tool("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check passed" in done.stdout


def test_check_comparisons_see_a_changed_weight(tmp_path: Path) -> None:
    sys.path.insert(0, str(TOOL.parent))
    try:
        import import_mediapipe_hands as tool
    finally:
        sys.path.remove(str(TOOL.parent))
    src = MODELS / "palm_detection_lite.npz"
    graph, names, info = read_tflite_graph_npz(src)
    j = next(iter(graph.constants))
    changed = dict(graph.constants)
    changed[j] = changed[j].copy()
    changed[j].flat[0] += np.float16(0.5)
    tampered = TFLiteGraph(graph.tensors, graph.operators, graph.inputs, graph.outputs, changed)
    save_tflite_graph_npz(tampered, tmp_path / src.name, names, info)
    assert tool.compare_npz(src, src) == []
    assert tool.compare_npz(src, tmp_path / src.name) == [f"{src.name}: entry t{j} differs"]


# --- the executor's operators on hand-built graphs against naive NHWC loops ----------------


def _same_before(size: int, k: int, s: int) -> int:
    out = -(-size // s)
    return max((out - 1) * s + k - size, 0) // 2


def _conv_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, depth_mult: int = 0):
    """TFLite CONV_2D (``depth_mult`` 0) or DEPTHWISE_CONV_2D, SAME padding, one image."""
    h, wd, _ = x.shape
    k = w.shape[1]
    oh, ow = -(-h // s), -(-wd // s)
    top, left = _same_before(h, k, s), _same_before(wd, k, s)
    cout = w.shape[0] if depth_mult == 0 else w.shape[3]
    out = np.zeros((oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            for o in range(cout):
                acc = float(b[o])
                for di in range(k):
                    for dj in range(k):
                        y, xx = i * s + di - top, j * s + dj - left
                        if 0 <= y < h and 0 <= xx < wd:
                            if depth_mult == 0:
                                acc += float(np.dot(x[y, xx], w[o, di, dj]))
                            else:
                                acc += x[y, xx, o // depth_mult] * w[0, di, dj, o]
                out[i, j, o] = acc
    return out


def _avg_pool_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    h, wd, c = x.shape
    oh, ow = -(-h // s), -(-wd // s)
    top, left = _same_before(h, k, s), _same_before(wd, k, s)
    out = np.zeros((oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            ys = [y for y in range(i * s - top, i * s - top + k) if 0 <= y < h]
            xs = [v for v in range(j * s - left, j * s - left + k) if 0 <= v < wd]
            out[i, j] = x[np.ix_(ys, xs)].reshape(-1, c).mean(axis=0)
    return out


def test_executor_ops_match_naive_loops() -> None:
    """SAME stride-2 conv (asymmetric pad), depthwise x2, SAME average pool (odd size),
    channel PAD, NHWC reshape, FC on the flattened NHWC tensor, concat on channels."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float16)  # (O, KH, KW, I)
    b1 = rng.normal(size=4).astype(np.float16)
    w2 = rng.normal(size=(1, 3, 3, 8)).astype(np.float16)  # (1, KH, KW, C * 2)
    b2 = rng.normal(size=8).astype(np.float16)
    fw = rng.normal(size=(5, 2 * 2 * 10)).astype(np.float16)
    fb = rng.normal(size=5).astype(np.float16)
    shapes = {
        0: (1, 7, 8, 3), 1: (4, 3, 3, 3), 2: (4,), 3: (1, 4, 4, 4), 4: (1, 3, 3, 8), 5: (8,),
        6: (1, 4, 4, 8), 7: (1, 2, 2, 8), 8: (1, 2, 2, 10), 9: (1, 40), 10: (5, 40), 11: (5,),
        12: (1, 5), 13: (1, 2, 2, 18),
    }  # fmt: skip
    consts = {1: w1, 2: b1, 4: w2, 5: b2, 10: fw, 11: fb}
    tensors = {j: TFLiteTensor(j, f"t{j}", s, "float32", j in consts) for j, s in shapes.items()}
    ops = (
        TFLiteOperator(
            "CONV_2D", (0, 1, 2), (3,),
            {"stride": [2, 2], "dilation": [1, 1], "padding": "SAME", "activation": "RELU"},
        ),
        TFLiteOperator(
            "DEPTHWISE_CONV_2D", (3, 4, 5), (6,),
            {"stride": [1, 1], "dilation": [1, 1], "padding": "SAME", "activation": "NONE",
             "depth_multiplier": 2},
        ),
        TFLiteOperator(
            "AVERAGE_POOL_2D", (6,), (7,),
            {"stride": [2, 2], "filter": [3, 3], "padding": "SAME", "activation": "NONE"},
        ),
        TFLiteOperator("PAD", (7,), (8,), {"paddings": [[0, 0], [0, 0], [0, 0], [1, 1]]}),
        TFLiteOperator("RESHAPE", (8,), (9,), {"new_shape": [1, -1]}),
        TFLiteOperator(
            "FULLY_CONNECTED", (9, 10, 11), (12,),
            {"activation": "NONE", "keep_num_dims": False},
        ),
        TFLiteOperator("CONCATENATION", (7, 8), (13,), {"axis": -1, "activation": "NONE"}),
    )  # fmt: skip
    graph = TFLiteGraph(tensors, ops, (0,), (12, 13, 9), consts)
    net = TFLiteGraphNet(graph, ["fc", "cat", "flat"])

    x = rng.random((2, 7, 8, 3))
    with torch.no_grad():
        got = net(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    f32 = {j: a.astype(np.float64) for j, a in consts.items()}
    for n in range(2):
        t3 = np.maximum(_conv_nhwc(x[n], f32[1], f32[2], 2), 0.0)
        t6 = _conv_nhwc(t3, f32[4], f32[5], 1, depth_mult=2)
        t7 = _avg_pool_same(t6, 3, 2)
        t8 = np.pad(t7, ((0, 0), (0, 0), (1, 1)))
        flat = t8.reshape(-1)
        fc = f32[10] @ flat + f32[11]
        cat = np.concatenate([t7, t8], axis=-1)
        np.testing.assert_allclose(got["flat"][n].numpy(), flat, atol=1e-4)
        np.testing.assert_allclose(got["fc"][n].numpy(), fc, atol=1e-3)
        # Rank-4 outputs come back NCHW.
        np.testing.assert_allclose(got["cat"][n].numpy(), cat.transpose(2, 0, 1), atol=1e-4)


def test_executor_mean_prelu_resize_against_numpy() -> None:
    """MEAN over H, W; PRELU with per-channel alpha; RESIZE_BILINEAR half-pixel (2x)."""
    rng = np.random.default_rng(1)
    alpha = rng.normal(size=(1, 1, 4)).astype(np.float16)
    shapes = {0: (1, 3, 3, 4), 1: (1, 1, 4), 2: (1, 3, 3, 4), 3: (1, 4), 4: (1, 6, 6, 4)}
    tensors = {j: TFLiteTensor(j, f"t{j}", s, "float32", j == 1) for j, s in shapes.items()}
    ops = (
        TFLiteOperator("PRELU", (0, 1), (2,), {}),
        TFLiteOperator("MEAN", (2,), (3,), {"axes": [1, 2], "keep_dims": False}),
        TFLiteOperator(
            "RESIZE_BILINEAR", (0,), (4,),
            {"size": [6, 6], "align_corners": False, "half_pixel_centers": True},
        ),
    )  # fmt: skip
    net = TFLiteGraphNet(TFLiteGraph(tensors, ops, (0,), (3, 4), {1: alpha}), ["mean", "up"])
    x = rng.normal(size=(1, 3, 3, 4))
    with torch.no_grad():
        got = net(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    a = alpha.astype(np.float64).reshape(-1)
    prelu = np.where(x >= 0, x, x * a)
    np.testing.assert_allclose(got["mean"].numpy(), prelu.mean(axis=(1, 2)), atol=1e-6)

    def src(i: int) -> tuple[int, int, float]:  # TFLite half-pixel source rows, weight
        v = (i + 0.5) / 2 - 0.5
        lo = int(np.floor(v))
        return max(lo, 0), min(lo + 1, 2), v - lo

    up = np.zeros((6, 6, 4))
    for i in range(6):
        y0, y1, wy = src(i)
        for j in range(6):
            x0, x1, wx = src(j)
            top = x[0, y0, x0] * (1 - wx) + x[0, y0, x1] * wx
            bottom = x[0, y1, x0] * (1 - wx) + x[0, y1, x1] * wx
            up[i, j] = top * (1 - wy) + bottom * wy
    np.testing.assert_allclose(got["up"][0].numpy(), up.transpose(2, 0, 1), atol=1e-6)
