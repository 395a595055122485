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
from stereo_hand_mesh.errors import ConfigError, DataError, ShapeError

__all__ = [
    "COMPRESSED_FORMATS",
    "decode_compressed_rgb",
    "encode_compressed_rgb",
    "read_image_rgb",
    "read_mask",
    "write_image_png",
    "write_mask_png",
]

#: Codecs of sensor_msgs/CompressedImage that :func:`decode_compressed_rgb` decodes.
COMPRESSED_FORMATS = ("jpeg", "png")

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


def _compressed_codec(fmt: str, where: str) -> str:
    """``"jpeg"`` or ``"png"`` from a CompressedImage ``format`` field: image_transport writes
    ``"<encoding>; <codec> compressed <encoding>"`` (``"bgr8; jpeg compressed bgr8"``),
    older publishers the codec alone (``"jpeg"``, ``"jpg"``, ``"png"``)."""
    text = fmt.lower()
    if "compresseddepth" in text.replace(" ", ""):
        raise DataError(
            f"{where} expected a {' or '.join(COMPRESSED_FORMATS)} colour or mono image; got "
            f"compressedDepth ({fmt!r})"
        )
    codecs = [c for c in COMPRESSED_FORMATS if c in text or (c == "jpeg" and "jpg" in text)]
    if len(codecs) != 1:
        raise DataError(
            f"{where} format expected to name one of {list(COMPRESSED_FORMATS)} (e.g. "
            f"'bgr8; jpeg compressed bgr8'); got {fmt!r}"
        )
    return codecs[0]


def decode_compressed_rgb(data: bytes | np.ndarray, fmt: str, where: str = "image") -> np.ndarray:
    """Decode the payload of a sensor_msgs/CompressedImage (JPEG or PNG) as RGB.

    Mono images are repeated to three channels, an alpha channel is dropped, 16-bit PNGs
    keep their high byte. The data must be whole: a JPEG without its end-of-image marker
    after the last scan, or a PNG without its IEND chunk, is refused rather than shown half
    grey.

    Args:
        data: the message's ``data`` (bytes, or a uint8 array).
        fmt: the message's ``format`` field (see :func:`_compressed_codec`).
        where: what the image is (topic, stamp) for error messages.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        DataError: the format names no supported codec, or the data is empty, truncated,
            corrupt or of another codec than the format says.
    """
    import cv2

    codec = _compressed_codec(fmt, where)
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else data
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    if buf.size == 0:
        raise DataError(f"{where} expected {codec} data; got 0 bytes")
    head = buf[:8].tobytes()
    if codec == "jpeg" and not head.startswith(_JPEG_SOI):
        raise DataError(
            f"{where} expected JPEG data (starting ff d8); got {buf.size} bytes starting "
            f"{head[:4].hex(' ')}"
        )
    if codec == "png" and head != _PNG_SIGNATURE:
        raise DataError(
            f"{where} expected PNG data (the PNG signature); got {buf.size} bytes starting "
            f"{head[:4].hex(' ')}"
        )
    tail = buf[-4096:].tobytes()
    if codec == "jpeg" and b"\xff\xd9" not in tail[-64:]:
        raise DataError(f"{where}: JPEG of {buf.size} bytes is truncated (no end-of-image)")
    if codec == "png" and _PNG_IEND not in tail[-64:]:
        raise DataError(f"{where}: PNG of {buf.size} bytes is truncated (no IEND chunk)")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise DataError(f"{where}: could not decode {codec} data of {buf.size} bytes (corrupt)")
    return image


def encode_compressed_rgb(
    rgb: np.ndarray, codec: str = "jpeg", quality: int = 90
) -> tuple[bytes, str]:
    """Encode an RGB image as the payload of a sensor_msgs/CompressedImage.

    The inverse of :func:`decode_compressed_rgb`, as image_transport's ``compressed`` plugin
    encodes a bgr8 image.

    Args:
        rgb: (H, W, 3) uint8 RGB image.
        codec: ``"jpeg"`` or ``"png"``.
        quality: JPEG quality, 1-100 (ignored for PNG).

    Returns:
        The encoded bytes and the message's ``format`` field
        (``"bgr8; jpeg compressed bgr8"``).

    Raises:
        ShapeError: ``rgb`` is not (H, W, 3) uint8.
        ConfigError: an unknown codec, or a quality outside 1-100.
    """
    import cv2

    if codec not in COMPRESSED_FORMATS:
        raise ConfigError(f"codec expected one of {list(COMPRESSED_FORMATS)}; got {codec!r}")
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality expected 1-100; got {quality}")
    check_shape(rgb, (None, None, 3), "rgb")
    if rgb.dtype != np.uint8:
        raise ShapeError(f"rgb expected dtype uint8; got {rgb.dtype}")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise DataError(f"could not encode a {rgb.shape} image as {codec}")
    return buf.tobytes(), f"bgr8; {codec} compressed bgr8"


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
