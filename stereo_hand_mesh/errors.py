"""One exception hierarchy for the whole package.

Every error the package raises on bad input derives from :class:`StereoHandMeshError`, and its
message says what was expected and what came, e.g.
``"disparity expected shape (B, 1, H, W); got (2, 480, 640)"``. Callers that want to keep a
node alive catch :class:`StereoHandMeshError` and log ``str(err)``.
"""

from __future__ import annotations

__all__ = [
    "CameraInfoError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EncodingError",
    "FitError",
    "ModelFileError",
    "RecordingStoppedError",
    "ShapeError",
    "StereoHandMeshError",
]


class StereoHandMeshError(Exception):
    """Base class of every error raised by stereo_hand_mesh."""


class ShapeError(StereoHandMeshError, ValueError):
    """An array or tensor has the wrong shape, dtype or holds non-finite values."""


class ConfigError(StereoHandMeshError, ValueError):
    """A setting, parameter or command-line option is out of range or inconsistent."""


class CameraInfoError(StereoHandMeshError, ValueError):
    """A CameraInfo (message or YAML file) is unusable: zero/NaN P, zero baseline, bad size."""


class EncodingError(StereoHandMeshError, ValueError):
    """An image encoding is not supported or does not match the buffer."""


class FitError(StereoHandMeshError, ValueError):
    """Keypoints admit no hand fit.

    Most disparities are <= 0 (the hand would be behind the cameras: swapped views or a wrong
    principal point), or a cold start lacks the palm keypoints it aligns the template to.
    """


class DataError(StereoHandMeshError):
    """A dataset file or bag is missing, truncated or lacks an expected field or topic."""


class RecordingStoppedError(DataError):
    """A recording stopped by itself (disk full, free space below the limit, a write error).

    Raised once, by the write that stopped it; the message (and the recorder's state) says
    why. The splits closed before it stay complete and readable.
    """


class ModelFileError(StereoHandMeshError):
    """A model, ONNX file or engine is missing, corrupt or incompatible."""


class CheckpointError(ModelFileError):
    """A training checkpoint is missing, corrupt or incompatible."""
