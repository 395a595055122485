"""Which stereo pairs the adaptation node records: :class:`PairSelector` (numpy + OpenCV).

A pair is kept when enough time and enough change have passed since the last kept pair, and
the pipeline's hand locator finds a hand in it. It sits beside the adaptation node, not in
``data/``, because it uses the pipeline (the data layer imports no pipeline).

This module imports OpenCV and the hand locator only inside the functions that need them,
never rclpy or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    from stereo_hand_mesh.pipeline.locator import LocatorSettings

__all__ = ["PairSelector", "SelectorSettings"]


@dataclass(frozen=True)
class SelectorSettings:
    """Settings of :class:`PairSelector`.

    Attributes:
        min_change: a pair is a near-duplicate of the last kept one when the mean absolute
            difference of their left-image thumbnails is below this, in 8-bit grey levels
            (0-255); a pair whose thumbnail equals the last kept one's is dropped even with
            0 (default 2.0: sensor noise on a static scene stays far below it once averaged
            into the thumbnail; a hand moving over a tenth of the image is above it).
        min_interval_s: at least this many seconds (header stamps) between kept pairs;
            0 disables the test (default 0.2, at most 5 pairs a second).
        thumbnail_width_px: width of the grey thumbnail compared (its height keeps the aspect
            ratio); each thumbnail pixel averages a block of the image (default 32).
        require_hand: keep only pairs where :func:`~stereo_hand_mesh.pipeline.locator.
            locate_hand` finds a hand (skin in the left view, matched along the same rows in
            the right view) (default True).
        locator: the locator's settings; None = ``LocatorSettings()``.
    """

    min_change: float = 2.0
    min_interval_s: float = 0.2
    thumbnail_width_px: int = 32
    require_hand: bool = True
    locator: LocatorSettings | None = None

    def __post_init__(self) -> None:
        for name in ("min_change", "min_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
            ):
                raise ConfigError(
                    f"SelectorSettings.{name} expected a finite number >= 0; got {value!r}"
                )
        if isinstance(self.thumbnail_width_px, bool) or not (
            isinstance(self.thumbnail_width_px, int) and 4 <= self.thumbnail_width_px <= 256
        ):
            raise ConfigError(
                f"SelectorSettings.thumbnail_width_px expected an int in [4, 256]; "
                f"got {self.thumbnail_width_px!r}"
            )


class PairSelector:
    """Decides which stereo pairs are worth recording for adaptation (numpy + OpenCV).

    Tests, cheapest first: time since the last kept pair (``min_interval_s``), change of a
    small grey thumbnail of the left image since the last kept pair (``min_change``), and a
    hand found by the pipeline's locator (``require_hand``). A pair dropped by one test is
    not tested further. Only kept pairs become the reference for the next ones; a stamp
    earlier than the last kept one (a replayed bag, a clock reset) passes the interval test.

    Cost per pair at 640x480 (median, 2-core development VM, OpenCV 5): 0.01 ms when too
    soon, 0.2 ms as a near-duplicate, 2-3 ms without a hand, 2.5-3.5 ms for a kept pair (the
    locator dominates); well inside a 30 Hz camera's 33 ms. Not thread-safe: call it from
    one thread.

    Examples:
        >>> selector = PairSelector()
        >>> keep, reason = selector.consider(left_rgb, right_rgb, stamp_ns)
    """

    def __init__(self, settings: SelectorSettings | None = None) -> None:
        self.settings = settings if settings is not None else SelectorSettings()
        self._locator = self.settings.locator
        self._last_thumb: np.ndarray | None = None
        self._last_stamp_ns: int | None = None

    def reset(self) -> None:
        """Forget the last kept pair (e.g. when a new recording starts)."""
        self._last_thumb = None
        self._last_stamp_ns = None

    def thumbnail(self, image: np.ndarray) -> np.ndarray:
        """Grey thumbnail of an image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            (h, w) float32 grey levels 0-255, ``w = thumbnail_width_px``,
            ``h = round(w * H / W)`` (at least 1), each pixel the mean of its image block.
        """
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        width = self.settings.thumbnail_width_px
        height = max(1, round(width * image.shape[0] / image.shape[1]))
        return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)

    def consider(
        self, left_rgb: np.ndarray, right_rgb: np.ndarray, stamp_ns: int
    ) -> tuple[bool, str]:
        """Keep this pair?

        Args:
            left_rgb: (H, W, 3) uint8 RGB left rectified image.
            right_rgb: (H, W, 3) uint8 RGB right rectified image.
            stamp_ns: the pair's header stamp, nanoseconds.

        Returns:
            ``(keep, reason)``: ``(True, "kept: ...")`` or ``(False, "too soon: ...")``,
            ``(False, "near-duplicate: ...")``, ``(False, "no hand: ...")``.

        Raises:
            ShapeError: images not (H, W, 3) uint8 or of different sizes.
        """
        for name, image in (("left_rgb", left_rgb), ("right_rgb", right_rgb)):
            check_shape(image, ("H", "W", 3), name)
            if image.dtype != np.uint8:
                raise ShapeError(f"{name} expected dtype uint8; got {image.dtype}")
        if left_rgb.shape != right_rgb.shape:
            raise ShapeError(
                f"right_rgb expected shape {left_rgb.shape} (the left's); got {right_rgb.shape}"
            )
        s = self.settings
        stamp_ns = int(stamp_ns)
        last = self._last_stamp_ns
        if s.min_interval_s > 0 and last is not None and stamp_ns >= last:
            gap_s = (stamp_ns - last) / 1e9
            if gap_s < s.min_interval_s:
                return False, (
                    f"too soon: {gap_s:.3f} s after the last kept pair < min_interval_s "
                    f"{s.min_interval_s:g}"
                )
        thumb = self.thumbnail(left_rgb)
        change = math.inf
        if self._last_thumb is not None and self._last_thumb.shape == thumb.shape:
            change = float(np.abs(thumb - self._last_thumb).mean())
            if change < s.min_change or change == 0:
                return False, (
                    f"near-duplicate: change {change:.2f} grey levels since the last kept "
                    f"pair < min_change {s.min_change:g}"
                )
        if s.require_hand:
            from stereo_hand_mesh.pipeline.locator import LocatorSettings, locate_hand

            if self._locator is None:
                self._locator = LocatorSettings()
            boxes = locate_hand(left_rgb, right_rgb, self._locator)
            if boxes is None:
                return False, (
                    "no hand: no skin-coloured region of the left view matched in the right view"
                )
            found = f"hand at disparity {boxes.disparity_px:.1f} px"
        else:
            found = "no hand test"
        self._last_thumb, self._last_stamp_ns = thumb, stamp_ns
        what = "first pair" if math.isinf(change) else f"change {change:.2f} grey levels"
        return True, f"kept: {what}, {found}"
