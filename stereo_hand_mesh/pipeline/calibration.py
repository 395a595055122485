"""Per-user hand calibration: the user's 9 shape factors, estimated once from a recording and
kept in the keypoint model file, so that every later fit has the user's hand size.

Flow (``stereo-hand-mesh calibrate``, issue 16 item 2):

1. the product pipeline (:class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline`) plays
   unlabelled stereo pairs in order; for every pair where it finds a hand,
   :func:`calibration_fit` fits the template to that pair's keypoints again, cold and with the
   shape free (:data:`CALIBRATION_FIT_SETTINGS`: more iterations and a tighter tolerance than
   the per-frame path can afford), weighted like the product weights them (row agreement);
2. :func:`calibrate_hand` takes the confidence-weighted median of the per-pair shape factors,
   factor by factor: a pair whose keypoints are off (a wrong finger, a bad crop) moves a
   median much less than a mean, and the fits are independent, so no pair's error leaks into
   another's;
3. :func:`write_model_calibration` stores the result (:class:`HandCalibration`, JSON) in a
   copy of the landmark network: ONNX ``metadata_props`` key
   :data:`CALIBRATION_METADATA_KEY`, or the ``.npz``'s ``info`` key :data:`CALIBRATION_INFO_KEY`;
4. :func:`~stereo_hand_mesh.pipeline.factory.create_pipeline` reads it back
   (:func:`read_model_calibration`) and fits every pair with that shape held
   (:attr:`~stereo_hand_mesh.hand.fit_types.FitSettings.fixed_shape`).

No per-rig depth offset is estimated: without labels nothing in a recording measures one
(a hand of unknown size at an unknown depth looks the same as a scaled hand nearer or
farther), so the calibration holds the shape only.

Reading a calibration imports neither torch nor the ``onnx`` package (ONNX Runtime reads the
metadata; an ``.npz`` is read with numpy); writing one imports ``onnx`` for ONNX files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stereo_hand_mesh.errors import (
    ConfigError,
    DataError,
    ModelFileError,
    ShapeError,
    StereoHandMeshError,
)
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.hand.fit_types import FitSettings, HandFit
from stereo_hand_mesh.hand.joints import NUM_JOINTS
from stereo_hand_mesh.hand.shape import NUM_SHAPE_PARAMS, SHAPE_LIMITS, SHAPE_PARAM_NAMES
from stereo_hand_mesh.pipeline.fit import fit_hand
from stereo_hand_mesh.runtime.keypoint_info import KEYPOINT_METADATA_KEY

__all__ = [
    "CALIBRATION_FIT_SETTINGS",
    "CALIBRATION_INFO_KEY",
    "CALIBRATION_METADATA_KEY",
    "CALIBRATION_VERSION",
    "CalibrationPairs",
    "HandCalibration",
    "calibrate_hand",
    "calibrated_fit_settings",
    "calibration_fit",
    "collect_calibration_fits",
    "read_model_calibration",
    "write_model_calibration",
]

#: ONNX ``metadata_props`` key of a keypoint model's hand calibration (JSON).
CALIBRATION_METADATA_KEY = "stereo_hand_mesh_hand_calibration"
#: Key of the hand calibration in a ``.npz`` keypoint model's ``info`` dict.
CALIBRATION_INFO_KEY = "hand_calibration"
#: Version of the calibration JSON this module writes and reads.
CALIBRATION_VERSION = 1

#: Settings of the per-pair calibration fits: cold, shape free, run to convergence.
CALIBRATION_FIT_SETTINGS = FitSettings(max_iterations=40, tolerance=1e-5)


@dataclass(frozen=True)
class HandCalibration:
    """One user's hand, as the template fit sees it.

    Attributes:
        shape: (S,) shape factors, :data:`~stereo_hand_mesh.hand.shape.SHAPE_PARAM_NAMES`
            order, within :data:`~stereo_hand_mesh.hand.shape.SHAPE_LIMITS`.
        pairs: how many stereo pairs it was estimated from (>= 1).
        spread: (S,) robust spread of the per-pair factors about ``shape`` (1.4826 x the
            weighted median absolute deviation): how much single pairs disagreed.
        source: free text: where it came from (a recording's path, a command line).
        version: :data:`CALIBRATION_VERSION`.
    """

    shape: tuple[float, ...]
    pairs: int
    spread: tuple[float, ...] = (0.0,) * NUM_SHAPE_PARAMS
    source: str = ""
    version: int = CALIBRATION_VERSION

    def __post_init__(self) -> None:
        if self.version != CALIBRATION_VERSION:
            raise ConfigError(
                f"HandCalibration.version expected {CALIBRATION_VERSION}; got {self.version!r}"
            )
        # The FitSettings check says which factor is wrong and its limits.
        FitSettings(fixed_shape=self.shape)
        spread = self.spread
        if (
            not isinstance(spread, tuple)
            or len(spread) != NUM_SHAPE_PARAMS
            or not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in spread)
        ):
            raise ConfigError(
                f"HandCalibration.spread expected a tuple of {NUM_SHAPE_PARAMS} finite values "
                f">= 0; got {spread!r}"
            )
        if isinstance(self.pairs, bool) or not isinstance(self.pairs, int) or self.pairs < 1:
            raise ConfigError(
                f"HandCalibration.pairs expected an integer >= 1; got {self.pairs!r}"
            )
        if not isinstance(self.source, str):
            raise ConfigError(
                f"HandCalibration.source expected a string; got {type(self.source).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (shape and spread by factor name)."""
        return {
            "version": self.version,
            "shape": dict(zip(SHAPE_PARAM_NAMES, self.shape, strict=True)),
            "spread": dict(zip(SHAPE_PARAM_NAMES, self.spread, strict=True)),
            "pairs": self.pairs,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: object) -> HandCalibration:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: not a dict of that form (missing or unknown factors, bad values,
                another version).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"hand calibration expected a JSON object; got {data!r:.80}")
        version = data.get("version")
        if version != CALIBRATION_VERSION:
            raise ConfigError(
                f"hand calibration expected version {CALIBRATION_VERSION}; got {version!r}"
            )
        factors = []
        for key in ("shape", "spread"):
            named = data.get(key)
            if not isinstance(named, dict) or set(named) != set(SHAPE_PARAM_NAMES):
                got = sorted(named) if isinstance(named, dict) else named
                raise ConfigError(
                    f"hand calibration '{key}' expected the factors {list(SHAPE_PARAM_NAMES)}; "
                    f"got {got!r:.200}"
                )
            values = tuple(named[n] for n in SHAPE_PARAM_NAMES)
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"hand calibration '{key}' expected numbers; got {values!r}")
            factors.append(tuple(float(v) for v in values))
        return cls(
            shape=factors[0],
            spread=factors[1],
            pairs=data.get("pairs"),  # checked by __post_init__
            source=data.get("source", ""),
            version=version,
        )

    def to_json(self) -> str:
        """The calibration as JSON (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HandCalibration:
        """Inverse of :meth:`to_json`.

        Raises:
            ConfigError: not JSON, or not a calibration (:meth:`from_dict`).
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"hand calibration expected JSON; got {text!r:.80} ({err})"
            ) from None
        return cls.from_dict(data)


def calibrated_fit_settings(
    settings: FitSettings, calibration: HandCalibration | None
) -> FitSettings:
    """``settings`` with the calibration's shape held (unchanged for None)."""
    if calibration is None:
        return settings
    return replace(settings, fixed_shape=calibration.shape)


# --------------------------------------------------------------------------------------------
# Estimation.


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted median of (N,) values with (N,) weights > 0 (lower median at a tie)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def calibrate_hand(
    fits: Sequence[HandFit],
    weights: Sequence[float] | np.ndarray | None = None,
    min_pairs: int = 10,
    source: str = "",
) -> HandCalibration:
    """The user's shape from many per-pair fits: the weighted median of each shape factor.

    Args:
        fits: per-pair template fits of one user's hand (e.g. :func:`calibration_fit`), N of
            them.
        weights: (N,) weight of each fit, >= 0 (e.g. the pipeline's confidence); None: all 1.
        min_pairs: fewest fits with weight > 0 to accept.
        source: recorded in the result.

    Returns:
        :class:`HandCalibration` (``pairs`` = fits with weight > 0; ``spread`` = 1.4826 x the
        weighted median absolute deviation of each factor).

    Raises:
        DataError: fewer than ``min_pairs`` fits with weight > 0.
        ConfigError: ``weights`` of another length, negative or non-finite, a ``fits`` entry
            that is no :class:`HandFit`, or ``min_pairs < 1``.

    Examples:
        >>> from stereo_hand_mesh.hand.fit_types import HandFit
        >>> fit = lambda s: HandFit(np.zeros(26), np.array([s] + [1.0] * 8), *[None] * 5,
        ...                         0, 0.0, "right")
        >>> calibrate_hand([fit(0.9), fit(0.92), fit(1.2)], min_pairs=3).shape[0]
        0.92
    """
    if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < 1:
        raise ConfigError(f"min_pairs expected an integer >= 1; got {min_pairs!r}")
    fits = list(fits)
    for i, fit in enumerate(fits):
        if not isinstance(fit, HandFit):
            raise ConfigError(f"fits[{i}] expected a HandFit; got {type(fit).__name__}")
    w = np.ones(len(fits)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(fits),) or not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError(
            f"weights expected {len(fits)} finite values >= 0 (one per fit); got shape "
            f"{w.shape}, min {w.min() if w.size else None}"
        )
    use = w > 0
    count = int(use.sum())
    if count < min_pairs:
        raise DataError(
            f"hand calibration expected a hand found in at least {min_pairs} pairs; got "
            f"{count} (of {len(fits)} fits given)"
        )
    shapes = np.stack([np.asarray(f.shape, dtype=np.float64) for f in fits])[use]
    w = w[use]
    shape = np.array([_weighted_median(shapes[:, k], w) for k in range(NUM_SHAPE_PARAMS)])
    mad = np.array(
        [_weighted_median(np.abs(shapes[:, k] - shape[k]), w) for k in range(NUM_SHAPE_PARAMS)]
    )
    shape = np.clip(shape, SHAPE_LIMITS[0], SHAPE_LIMITS[1])
    return HandCalibration(
        shape=tuple(float(v) for v in shape),
        pairs=count,
        spread=tuple(float(v) for v in 1.4826 * mad),
        source=source,
    )


def calibration_fit(
    keypoints: np.ndarray,
    rig: StereoRig,
    handedness: str = "right",
    row_sigma_px: float = 8.0,
    settings: FitSettings = CALIBRATION_FIT_SETTINGS,
) -> HandFit:
    """One pair's template fit for the calibration: cold, shape free (module docstring).

    Each keypoint's weight (both views) is its rows' agreement
    ``exp(-(v_l - v_r)^2 / (2 row_sigma_px^2))`` (a rectified pair sees a point on one row),
    0 where its disparity is not positive: the per-frame path's weighting.

    Args:
        keypoints: (2, 21, 2) the pair's keypoints in the left and the right image, pixels
            (:attr:`~stereo_hand_mesh.pipeline.estimator.HandEstimate.keypoints`).
        rig: the rectified rig.
        handedness: ``"right"`` or ``"left"``.
        row_sigma_px: scale of the row disagreement, pixels (> 0).
        settings: the fit's settings (its ``fixed_shape`` must be None).

    Raises:
        ShapeError: keypoints not (2, 21, 2) finite.
        ConfigError: ``row_sigma_px`` not > 0, or a ``fixed_shape`` in ``settings``.
        FitError: the fit failed (too few keypoints in front of the cameras).
    """
    if not (math.isfinite(row_sigma_px) and row_sigma_px > 0):
        raise ConfigError(f"row_sigma_px expected a finite value > 0; got {row_sigma_px!r}")
    if settings.fixed_shape is not None:
        raise ConfigError(
            "calibration_fit settings expected fixed_shape None (it estimates the shape); got "
            f"{settings.fixed_shape}"
        )
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (2, NUM_JOINTS, 2) or not np.isfinite(kp).all():
        raise ShapeError(
            f"keypoints expected finite values of shape (2, {NUM_JOINTS}, 2); got {kp.shape}"
        )
    disparity = (kp[0, :, 0] - rig.left.cx) - (kp[1, :, 0] - rig.right.cx)
    agree = np.exp(-0.5 * ((kp[0, :, 1] - kp[1, :, 1]) / row_sigma_px) ** 2) * (disparity > 0)
    k_l = np.array([rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy])
    k_r = np.array([rig.right.fx, rig.right.fy, rig.right.cx, rig.right.cy])
    return fit_hand(
        kp[0],
        kp[1],
        k_l,
        k_r,
        rig.baseline,
        np.stack([agree, agree]),
        None,
        None,
        settings,
        handedness,
    )


class _Estimate(Protocol):
    found: bool
    confidence: float
    keypoints: np.ndarray | None
    reason: str


class _Pipeline(Protocol):
    def reset(self) -> None: ...

    def process(
        self, left: np.ndarray, right: np.ndarray, rig: StereoRig, stamp_s: float | None = None
    ) -> _Estimate: ...


@dataclass(frozen=True)
class CalibrationPairs:
    """What :func:`collect_calibration_fits` found.

    Attributes:
        fits: the calibration fit of every pair where the pipeline found a hand.
        weights: (N,) the pipeline's confidence of each.
        indices: (N,) each fit's sample index.
        pairs: pairs played.
        not_found: pipeline reason (numbers kept) -> count, over the pairs without a fit.
    """

    fits: tuple[HandFit, ...]
    weights: np.ndarray
    indices: np.ndarray
    pairs: int
    not_found: dict[str, int]


def collect_calibration_fits(
    pipeline: _Pipeline,
    samples: Iterable[Any],
    handedness: str = "right",
    frame_rate_hz: float = 30.0,
) -> CalibrationPairs:
    """Play stereo samples in order through the product pipeline (tracking, reset at the
    start and wherever the sample indices jump) and fit each found pair for the calibration.

    Never reads ground truth: only each sample's images and camera_info are used.

    Args:
        pipeline: ``reset()`` / ``process(left, right, rig, stamp_s)`` (the product's
            :class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline`).
        samples: :class:`~stereo_hand_mesh.data.sample.StereoSample` (``left``, ``right``,
            ``left_info``, ``right_info``, ``index``, ``stamp_ns``).
        handedness: the hand fitted.
        frame_rate_hz: a sample without a stamp gets ``index / frame_rate_hz`` seconds.
    """
    fits: list[HandFit] = []
    weights: list[float] = []
    indices: list[int] = []
    reasons: Counter[str] = Counter()
    previous: int | None = None
    pairs = 0
    for sample in samples:
        pairs += 1
        if previous is None or sample.index != previous + 1:
            pipeline.reset()
        previous = sample.index
        rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
        stamp = (
            sample.stamp_ns * 1e-9 if sample.stamp_ns is not None else sample.index / frame_rate_hz
        )
        est = pipeline.process(sample.left, sample.right, rig, stamp)
        if not est.found or est.keypoints is None:
            reasons[est.reason] += 1
            continue
        try:
            fit = calibration_fit(est.keypoints, rig, handedness)
        except StereoHandMeshError as err:
            reasons[f"calibration fit failed: {err}"] += 1
            continue
        fits.append(fit)
        weights.append(float(est.confidence))
        indices.append(int(sample.index))
    return CalibrationPairs(
        tuple(fits), np.array(weights), np.array(indices, dtype=np.int64), pairs, dict(reasons)
    )


# --------------------------------------------------------------------------------------------
# Model files.


def _npz_doc(path: Path) -> tuple[dict[str, Any], np.lib.npyio.NpzFile]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ModelFileError(f"keypoint model {path} could not be read as .npz: {err}") from None
    if "graph_json" not in npz.files:
        npz.close()
        raise ModelFileError(
            f"keypoint model {path} expected a 'graph_json' entry (an imported network's "
            f".npz); got entries {sorted(npz.files)[:8]}"
        )
    try:
        doc = json.loads(str(npz["graph_json"][()]))
    except ValueError as err:
        npz.close()
        raise ModelFileError(
            f"keypoint model {path}: 'graph_json' expected JSON ({err})"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("info", {}), dict):
        npz.close()
        raise ModelFileError(f"keypoint model {path}: 'graph_json' expected an 'info' object")
    return doc, npz


def _onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read by ONNX Runtime (not the onnx package)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"ONNX model {path} could not be loaded: {err}") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_model_calibration(
    path: str | os.PathLike[str], onnx_metadata: Mapping[str, str] | None = None
) -> HandCalibration | None:
    """The hand calibration stored in a keypoint model file, or None when it has none.

    Args:
        path: a landmark network: ``.onnx`` (metadata key :data:`CALIBRATION_METADATA_KEY`)
            or ``.npz`` (``info`` key :data:`CALIBRATION_INFO_KEY`).
        onnx_metadata: the ``.onnx`` file's metadata as an ONNX Runtime session serving it
            already read them (no second session is opened); None reads the file.

    Raises:
        ModelFileError: the file is missing or unreadable, of another kind, or its
            calibration entry is not a valid calibration (the message says why).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"keypoint model expected a file; {path} does not exist")
    if path.suffix == ".npz":
        doc, npz = _npz_doc(path)
        npz.close()
        entry = doc.get("info", {}).get(CALIBRATION_INFO_KEY)
        if entry is None:
            return None
        text = json.dumps(entry)
    elif path.suffix == ".onnx":
        meta = _onnx_metadata(path) if onnx_metadata is None else onnx_metadata
        text = meta.get(CALIBRATION_METADATA_KEY)
        if text is None:
            return None
    else:
        raise ModelFileError(f"keypoint model expected a .onnx or .npz file; got {path}")
    try:
        return HandCalibration.from_json(text)
    except ConfigError as err:
        raise ModelFileError(f"keypoint model {path}: invalid hand calibration: {err}") from None


def _replace_atomically(dst: Path, write: Callable[[str], object], suffix: str) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``dst``, then move it there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix, dir=dst.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_model_calibration(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    calibration: HandCalibration,
) -> Path:
    """Write a copy of the landmark network ``src`` to ``dst`` carrying ``calibration``
    (replacing any calibration ``src`` had). Weights and graph are copied unchanged.

    Args:
        src: a landmark network, ``.onnx`` (with the ``stereo_hand_mesh_keypoints``
            metadata) or ``.npz`` (an imported network's weights).
        dst: the file to write (same suffix as ``src``; written atomically; may be ``src``).
        calibration: what to store.

    Returns:
        ``dst``.

    Raises:
        ConfigError: ``dst``'s suffix differs from ``src``'s, or ``calibration`` is no
            :class:`HandCalibration`.
        ModelFileError: ``src`` is missing, unreadable, or not a hand landmark network.
    """
    src, dst = Path(src), Path(dst)
    if not isinstance(calibration, HandCalibration):
        raise ConfigError(
            f"calibration expected a HandCalibration; got {type(calibration).__name__}"
        )
    if dst.suffix != src.suffix:
        raise ConfigError(f"dst expected the suffix of src ({src.suffix!r}); got {dst}")
    if not src.is_file():
        raise ModelFileError(f"keypoint model expected a file; {src} does not exist")
    if src.suffix == ".npz":
        doc, npz = _npz_doc(src)
        with npz:
            kind = doc.get("info", {}).get("kind")
            if kind != "hand_landmark":
                raise ModelFileError(
                    f"keypoint model {src} expected info kind 'hand_landmark' (the landmark "
                    f"network carries the calibration); got {kind!r}"
                )
            doc["info"][CALIBRATION_INFO_KEY] = calibration.to_dict()
            arrays = {name: npz[name] for name in npz.files if name != "graph_json"}
        arrays["graph_json"] = np.array(json.dumps(doc, sort_keys=True))
        _replace_atomically(dst, lambda tmp: np.savez_compressed(tmp, **arrays), ".npz")
        return dst
    if src.suffix != ".onnx":
        raise ModelFileError(f"keypoint model expected a .onnx or .npz file; got {src}")
    import onnx

    try:
        proto = onnx.load(str(src))
    except Exception as err:  # protobuf raises DecodeError and others for corrupt files
        raise ModelFileError(f"ONNX model {src} could not be read (corrupt?): {err}") from None
    entries = {e.key: e.value for e in proto.metadata_props}
    info = json.loads(entries.get(KEYPOINT_METADATA_KEY, "{}") or "{}")
    if not isinstance(info, dict) or info.get("kind") != "hand_landmark":
        raise ModelFileError(
            f"ONNX model {src} expected '{KEYPOINT_METADATA_KEY}' metadata of kind "
            f"'hand_landmark' (the landmark network carries the calibration); got "
            f"{info.get('kind') if isinstance(info, dict) else info!r}"
        )
    entries[CALIBRATION_METADATA_KEY] = calibration.to_json()
    del proto.metadata_props[:]
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    _replace_atomically(dst, lambda tmp: onnx.save(proto, tmp), ".onnx")
    return dst
