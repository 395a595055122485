"""Read and write images as RGB uint8 arrays, with clear errors for missing or broken files.

OpenCV decodes and encodes (it works in BGR; the conversion happens here, once). A missing
file, or a PNG/JPEG that is truncated or corrupt, raises
:class:`~stereo_hand_mesh.errors.DataError` naming the file instead of returning None.
OpenCV is imported on first use so that importing :mod:`stereo_hand_mesh.data` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import DataError, ShapeError

__all__ = ["read_image_rgb", "read_mask", "write_image_png", "write_mask_png"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"expected an image file; got no file at {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected an image file; got a directory at {path}") from None
    except OSError as err:
        raise DataError(f"could not read image {path}: {err.strerror}") from None


def _check_complete(data: bytes, path: Path) -> str:
    """Return 'PNG' or 'JPEG' after checking the file is whole; raise DataError otherwise."""
    if data.startswith(_PNG_SIGNATURE):
        # A whole PNG ends with the IEND chunk; anything shorter was cut off.
        if data.rstrip(b"\x00")[-len(_PNG_IEND) :] != _PNG_IEND:
            raise DataError(f"could not decode PNG {path} (truncated or corrupt)")
        return "PNG"
    if data.startswith(_JPEG_SOI):
        # The end-of-image marker must follow the last start-of-scan marker.
        if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
            raise DataError(f"could not decode JPEG {path} (truncated or corrupt)")
        return "JPEG"
    if not data:
        raise DataError(f"could not decode image {path} (empty file)")
    return "image"


def _decode(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as stored (BGR/BGRA/gray, any depth)."""
    import cv2

    path = Path(path)
    data = _read_bytes(path)
    kind = _check_complete(data, path)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"could not decode {kind} {path} (truncated or corrupt)")
    return image


def read_image_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit image file (PNG, JPEG, ...) as RGB.

    Gray images are repeated to three channels; an alpha channel is dropped.

    Args:
        path: image file.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        DataError: the file is missing, truncated, corrupt or not 8-bit.
    """
    import cv2

    image = _decode(path)
    if image.dtype != np.uint8:
        raise DataError(f"image {path} expected 8-bit pixels; got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise DataError(f"image {path} expected 1, 3 or 4 channels; got shape {image.shape}")


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit mask image (255 = hand).

    Our splits store masks as one channel; a colour file (e.g. a JPEG mask of a public
    dataset) is reduced to gray first.

    Args:
        path: image file.

    Returns:
        (H, W) bool array, True where the (gray) value is above 127.

    Raises:
        DataError: the file is missing, truncated, corrupt, or not 8-bit.
    """
    import cv2

    image = _decode(path)
    if image.dtype != np.uint8:
        raise DataError(f"mask {path} expected 8-bit pixels; got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2:
        raise DataError(f"mask {path} expected 1, 3 or 4 channels; got shape {image.shape}")
    return image > 127


def write_image_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an RGB image as an 8-bit 3-channel PNG.

    Args:
        path: destination file (its directory must exist).
        rgb: (H, W, 3) uint8 RGB array.

    Raises:
        ShapeError: ``rgb`` is not (H, W, 3) uint8.
        DataError: the file could not be written.
    """
    import cv2

    check_shape(rgb, (None, None, 3), "rgb")
    if rgb.dtype != np.uint8:
        raise ShapeError(f"rgb expected dtype uint8; got {rgb.dtype}")
    _encode_to(path, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))


def write_mask_png(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Write a hand mask as an 8-bit single-channel PNG (255 = hand, 0 = background).

    Args:
        path: destination file (its directory must exist).
        mask: (H, W) bool array, or any numeric array where nonzero means hand.

    Raises:
        ShapeError: ``mask`` is not two-dimensional.
        DataError: the file could not be written.
    """
    check_shape(mask, (None, None), "mask")
    _encode_to(path, np.where(np.asarray(mask) != 0, 255, 0).astype(np.uint8))


def _encode_to(path: str | os.PathLike[str], image: np.ndarray) -> None:
    import cv2

    ok, buffer = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 array
        raise DataError(f"could not encode PNG {path}")
    try:
        Path(path).write_bytes(buffer.tobytes())
    except OSError as err:
        raise DataError(f"could not write {path}: {err.strerror}") from None
