"""One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for arrays of points.

A low-pass filter whose cutoff rises with speed: little jitter when the hand is still, little
lag when it moves. Applied per coordinate to (V, 3) vertices in metres.
"""

from __future__ import annotations

import math

import numpy as np

from stereo_hand_mesh.errors import ConfigError

__all__ = ["OneEuroFilter"]


def _alpha(cutoff_hz: float, dt_s: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One Euro filter over arrays of a fixed shape.

    Args:
        min_cutoff_hz: cutoff at zero speed, Hz (> 0).
        beta: cutoff increase per unit speed (here 1/m: speed in m/s).
        d_cutoff_hz: cutoff of the speed estimate, Hz.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 20.0, d_cutoff_hz: float = 1.0):
        for name, value in (("min_cutoff_hz", min_cutoff_hz), ("d_cutoff_hz", d_cutoff_hz)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"OneEuroFilter.{name} expected > 0 Hz; got {value}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ConfigError(f"OneEuroFilter.beta expected >= 0; got {beta}")
        self.min_cutoff_hz, self.beta, self.d_cutoff_hz = min_cutoff_hz, beta, d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        """Forget the state (the next value passes through unchanged)."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter ``x`` observed at time ``t_s`` (seconds); returns the filtered copy.

        A value with a time not after the previous one, or of another shape, restarts the
        filter.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t_s <= self._t or x.shape != self._x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff_hz, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        speed = float(np.linalg.norm(self._dx.reshape(-1, self._dx.shape[-1]), axis=-1).mean())
        a = _alpha(self.min_cutoff_hz + self.beta * speed, dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t_s
        return self._x.copy()
