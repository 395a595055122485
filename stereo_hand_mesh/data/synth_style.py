"""Appearance of the two synthetic domains: lighting, skin, backgrounds and sensor response.

The ``source`` domain imitates a FreiHAND-like capture (bright, even studio or room light;
plain or green-screen backgrounds, sometimes a light table-top scene; a narrow range of light
skin tones; generic poses; a clean sensor, light JPEG). The ``target`` domain imitates an
indoor robot scene (room, window, overhead or flash light with cast shadows on the hand;
varied and darker skin tones; table-top scenes with props, a block sometimes held, or
cluttered backgrounds made from the real photographs that scikit-image ships; a different
sensor colour response, more noise and blur, motion blur and stronger JPEG; poses shifted
toward counting gestures). The forearm, skin detail, light set-ups and table-top scenes
themselves are in :mod:`~stereo_hand_mesh.data.synth_scene`. All functions are numpy and
deterministic for a given ``numpy.random.Generator``.

Images here are linear-light float32 in [0, 1], (H, W, 3) RGB, until :func:`apply_sensor`
turns them into uint8 sRGB-like camera output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from stereo_hand_mesh.errors import ConfigError

__all__ = [
    "DOMAINS",
    "SOURCE_STYLE",
    "TARGET_STYLE",
    "DomainStyle",
    "apply_sensor",
    "background_photos",
    "sample_background_plane",
    "sample_skin_albedo",
    "shade_lambert",
    "style_for",
]

#: Skin anchors (linear RGB albedo) from very light to very dark; a tone t in [0, 1]
#: interpolates along them.
_SKIN_ANCHORS = np.array(
    [
        [0.85, 0.62, 0.52],
        [0.72, 0.48, 0.37],
        [0.55, 0.33, 0.22],
        [0.33, 0.19, 0.12],
        [0.16, 0.09, 0.06],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class DomainStyle:
    """How one domain looks. Ranges are (low, high), sampled uniformly per stereo pair.

    Attributes:
        name: ``"source"`` or ``"target"``.
        skin_tone: range of the skin tone t in [0, 1] (0 very light, 1 very dark).
        ambient: ambient light intensity range.
        diffuse: directional light intensity range.
        light_elevation_deg: angle between the light direction and the camera axis.
        shadows: cast shadows of the hand onto itself (shadow map from the light).
        background: probabilities of "plain", "green", "photo" backgrounds.
        background_depth_m: depth range of the (fronto-parallel) background plane, metres.
        colour_matrix: (3, 3) sensor colour response applied in linear light.
        gains: per-channel white-balance gain ranges ((lo, hi) for R, G, B).
        noise_sigma: additive read-noise std range, in [0, 1] units.
        shot_noise: photon-noise scale (variance proportional to signal).
        blur_sigma_px: Gaussian blur std range, pixels.
        gamma: display gamma applied after the colour matrix.
        gesture_weights: relative frequency of each gesture name (see hand.gestures).
        light_setups: relative frequency of each light set-up
            (:data:`~stereo_hand_mesh.data.synth_scene.LIGHT_SETUPS`).
        brightness: range of the light rig's overall intensity.
        camera_pitch_deg: range of the camera's downward pitch (the world's up in the image).
        tabletop_probability: chance of a procedural table-top scene instead of the
            ``background`` plane.
        prop_count: (min, max) boxes and cylinders on the table.
        sleeve_probability: chance that the forearm wears a sleeve.
        hold_probability: chance that a block is held between thumb and index (when the
            pose's tips are 2-8 cm apart).
        motion_blur_px: range of the hand's motion blur, pixels.
        motion_blur_probability: chance of motion blur on a pair.
        jpeg_quality: range of the JPEG quality.
        jpeg_probability: chance of JPEG compression on a pair.
    """

    name: str
    skin_tone: tuple[float, float]
    ambient: tuple[float, float]
    diffuse: tuple[float, float]
    light_elevation_deg: tuple[float, float]
    shadows: bool
    background: dict[str, float]
    background_depth_m: tuple[float, float]
    colour_matrix: tuple[tuple[float, float, float], ...]
    gains: tuple[tuple[float, float], ...]
    noise_sigma: tuple[float, float]
    shot_noise: float
    blur_sigma_px: tuple[float, float]
    gamma: float
    gesture_weights: dict[str, float] = field(default_factory=dict)
    light_setups: dict[str, float] = field(default_factory=lambda: {"studio": 1.0})
    brightness: tuple[float, float] = (0.9, 1.1)
    camera_pitch_deg: tuple[float, float] = (0.0, 15.0)
    tabletop_probability: float = 0.0
    prop_count: tuple[int, int] = (0, 2)
    sleeve_probability: float = 0.3
    hold_probability: float = 0.0
    motion_blur_px: tuple[float, float] = (0.0, 0.0)
    motion_blur_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (85, 95)
    jpeg_probability: float = 0.0


SOURCE_STYLE = DomainStyle(
    name="source",
    skin_tone=(0.0, 0.35),
    ambient=(0.55, 0.7),
    diffuse=(0.35, 0.5),
    light_elevation_deg=(0.0, 20.0),
    shadows=False,
    background={"plain": 0.5, "green": 0.5, "photo": 0.0},
    background_depth_m=(1.0, 2.0),
    colour_matrix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    gains=((0.97, 1.03), (0.97, 1.03), (0.97, 1.03)),
    noise_sigma=(0.002, 0.006),
    shot_noise=0.002,
    blur_sigma_px=(0.0, 0.4),
    gamma=2.2,
    gesture_weights={
        "relaxed": 3.0,
        "spread": 2.0,
        "fist": 1.0,
        "point": 1.0,
        "pinch": 1.0,
        "count_1": 0.5,
        "count_2": 0.5,
        "count_3": 0.5,
        "count_4": 0.5,
        "count_5": 0.5,
        "random": 4.0,
    },
    light_setups={"studio": 3.0, "room": 1.0},
    brightness=(0.95, 1.15),
    camera_pitch_deg=(0.0, 40.0),
    tabletop_probability=0.3,
    prop_count=(0, 2),
    sleeve_probability=0.25,
    hold_probability=0.0,
    jpeg_quality=(85, 95),
    jpeg_probability=0.3,
)

TARGET_STYLE = DomainStyle(
    name="target",
    skin_tone=(0.15, 1.0),
    ambient=(0.08, 0.2),
    diffuse=(0.7, 1.1),
    light_elevation_deg=(35.0, 70.0),
    shadows=True,
    background={"plain": 0.0, "green": 0.0, "photo": 1.0},
    background_depth_m=(1.0, 2.5),
    # A warmer sensor with cross-talk between channels (unlike the source's identity).
    colour_matrix=((1.04, 0.08, -0.04), (0.05, 0.95, 0.03), (-0.03, 0.08, 0.9)),
    gains=((0.92, 1.1), (0.95, 1.02), (0.85, 1.05)),
    noise_sigma=(0.002, 0.007),
    shot_noise=0.002,
    blur_sigma_px=(0.8, 1.8),
    gamma=1.9,
    gesture_weights={
        "count_1": 3.0,
        "count_2": 3.0,
        "count_3": 3.0,
        "count_4": 3.0,
        "count_5": 3.0,
        "fist": 1.0,
        "point": 1.0,
        "pinch": 1.0,
        "spread": 1.0,
        "relaxed": 1.0,
        "random": 2.0,
    },
    light_setups={"room": 2.0, "window": 1.5, "overhead": 1.5, "flash": 1.0},
    brightness=(0.6, 1.1),
    camera_pitch_deg=(10.0, 60.0),
    tabletop_probability=0.6,
    prop_count=(1, 4),
    sleeve_probability=0.5,
    hold_probability=0.4,
    motion_blur_px=(1.5, 7.0),
    motion_blur_probability=0.4,
    jpeg_quality=(55, 90),
    jpeg_probability=0.7,
)

DOMAINS: dict[str, DomainStyle] = {"source": SOURCE_STYLE, "target": TARGET_STYLE}


def style_for(domain: str) -> DomainStyle:
    """The style of a domain name; ConfigError for anything but source/target."""
    try:
        return DOMAINS[domain]
    except KeyError:
        raise ConfigError(f"domain expected one of {sorted(DOMAINS)}; got '{domain}'") from None


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


@cache
def background_photos() -> tuple[np.ndarray, ...]:
    """Real photographs shipped with scikit-image, as linear float32 (H, W, 3) images."""
    import skimage.data as skd

    names = ("astronaut", "coffee", "chelsea", "rocket", "brick", "gravel", "camera", "grass")
    photos = []
    for name in names:
        img = np.asarray(getattr(skd, name)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos.append(((img[:, :, :3].astype(np.float32) / 255.0) ** 2.2).astype(np.float32))
    left, right, _ = skd.stereo_motorcycle()
    for img in (left, right):
        photos.append(((img[:, :, :3].astype(np.float32) / 255.0) ** 2.2).astype(np.float32))
    return tuple(photos)


def _photo_collage(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered texture: a random photo crop with 0-2 more photo patches pasted over it."""
    photos = background_photos()
    canvas = _random_crop(photos[rng.integers(len(photos))], rng, height, width)
    for _ in range(int(rng.integers(0, 3))):
        ph, pw = (
            int(rng.integers(height // 5, height // 2)),
            int(rng.integers(width // 5, width // 2)),
        )
        patch = _random_crop(photos[rng.integers(len(photos))], rng, ph, pw)
        y, x = int(rng.integers(0, height - ph)), int(rng.integers(0, width - pw))
        canvas[y : y + ph, x : x + pw] = patch * float(rng.uniform(0.5, 1.2))
    return np.clip(canvas, 0.0, 1.0)


def _random_crop(img: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    scale = float(rng.uniform(0.8, 1.6)) * max(height / img.shape[0], width / img.shape[1])
    resized = cv2.resize(
        img, (max(width, round(img.shape[1] * scale)), max(height, round(img.shape[0] * scale)))
    )
    if rng.random() < 0.5:
        resized = resized[:, ::-1]
    y = int(rng.integers(0, resized.shape[0] - height + 1))
    x = int(rng.integers(0, resized.shape[1] - width + 1))
    return np.ascontiguousarray(resized[y : y + height, x : x + width])


def sample_background_plane(
    style: DomainStyle, rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, float]:
    """Texture and depth of the fronto-parallel background plane behind the hand.

    The texture is wider than the image so that both views of a rectified pair can cut it:
    the left view uses columns [0, width) and the right view columns shifted by the
    background's disparity (see synth renderer).

    Returns:
        texture: (height, width + width // 2, 3) float32 linear RGB in [0, 1].
        depth_m: depth of the plane in metres.
    """
    kinds = list(style.background)
    probs = np.array([style.background[k] for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
    full_w = width + width // 2
    if kind == "photo":
        tex = _photo_collage(rng, height, full_w)
    else:
        base = (
            np.array([0.08, 0.45, 0.1]) * rng.uniform(0.8, 1.2, 3)
            if kind == "green"
            else np.full(3, rng.uniform(0.35, 0.9)) * rng.uniform(0.9, 1.1, 3)
        )
        ramp = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.15), height)[:, None, None]
        tex = np.clip(base[None, None, :] * ramp * np.ones((height, full_w, 1)), 0.0, 1.0)
    return tex.astype(np.float32), _uniform(rng, style.background_depth_m)


def sample_skin_albedo(
    style: DomainStyle, rng: np.random.Generator, rest_vertices: np.ndarray
) -> np.ndarray:
    """Per-vertex skin albedo with low- and high-frequency variation.

    Args:
        rest_vertices: (V, 3) rest-pose vertices in metres (the texture follows the skin).

    Returns:
        (V, 3) float32 linear RGB albedo in [0, 1].
    """
    tone = _uniform(rng, style.skin_tone) * (len(_SKIN_ANCHORS) - 1)
    i = min(int(tone), len(_SKIN_ANCHORS) - 2)
    base = _SKIN_ANCHORS[i] * (1 - (tone - i)) + _SKIN_ANCHORS[i + 1] * (tone - i)
    # Low-frequency blotches: a few random sinusoids over the rest shape (about 3-6 cm).
    v = rest_vertices - rest_vertices.mean(axis=0)
    freq = rng.normal(0.0, 1.0, (4, 3)) * rng.uniform(100.0, 200.0, (4, 1))
    phase = rng.uniform(0, 2 * np.pi, 4)
    low = np.sin(v @ freq.T + phase).mean(axis=1, keepdims=True) * 0.08
    fine = rng.normal(0.0, 0.025, (len(v), 1))
    redness = rng.normal(0.0, 0.02, (len(v), 1)) * np.array([[1.0, -0.5, -0.5]])
    albedo = base[None, :] * (1.0 + low + fine) + redness
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def shade_lambert(
    albedo: np.ndarray,
    normals: np.ndarray,
    light_dir: np.ndarray,
    ambient: float,
    diffuse: float,
    lit: np.ndarray | None = None,
) -> np.ndarray:
    """Ambient + Lambertian shading with an optional shadow mask.

    Args:
        albedo: (*, 3) linear RGB.
        normals: (*, 3) unit normals in the camera frame.
        light_dir: (3,) unit vector from the surface toward the light, camera frame.
        ambient: ambient intensity.
        diffuse: directional intensity.
        lit: (*) float or bool, 1 where the light reaches the surface (None: everywhere).

    Returns:
        (*, 3) linear RGB radiance.
    """
    cos = np.clip(normals @ light_dir, 0.0, None)
    if lit is not None:
        cos = cos * lit
    return albedo * (ambient + diffuse * cos)[..., None]


def apply_sensor(
    linear: np.ndarray, style: DomainStyle, rng: np.random.Generator, gains: np.ndarray
) -> np.ndarray:
    """Camera response: blur, colour matrix and gains, noise, gamma, quantization.

    Args:
        linear: (H, W, 3) linear RGB in [0, 1] (scene radiance).
        gains: (3,) white-balance gains of this pair (shared by both views).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    img = linear
    sigma = _uniform(rng, style.blur_sigma_px)
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = cv2.transform(img, np.asarray(style.colour_matrix, np.float32) * gains[:, None])
    np.clip(img, 0.0, 1.0, out=img)
    noise_var = _uniform(rng, style.noise_sigma) ** 2 + style.shot_noise * img
    img += _noise_field(rng, img.shape) * np.sqrt(noise_var)
    # Gamma and quantization through a 4096-entry table.
    index = np.clip(img * 4095.0 + 0.5, 0.0, 4095.0).astype(np.uint16)
    return _gamma_table(style.gamma)[index]


@cache
def _noise_bank(height: int, width: int) -> np.ndarray:
    """(2 H, 2 W, 3) float32 standard normal samples, the same in every process."""
    bank = np.random.default_rng(0x5E7502).standard_normal(
        (2 * height, 2 * width, 3), dtype=np.float32
    )
    bank.setflags(write=False)
    return bank


def _noise_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W, 3) standard normal noise: a window of a fixed bank at a random offset, sign
    and channel order drawn from ``rng`` (a tenth of the cost of drawing every sample; a
    window never repeats within an image, and a repeated window across images is moved)."""
    h, w = shape[:2]
    bank = _noise_bank(h, w)
    y, x = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
    order = int(rng.integers(3))
    window = bank[y : y + h, x : x + w]
    return np.roll(window, order, axis=2) * sign if order else window * sign


@cache
def _gamma_table(gamma: float) -> np.ndarray:
    """(4096,) uint8: the display gamma of linear values k / 4095."""
    x = np.arange(4096, dtype=np.float64) / 4095.0
    return (x ** (1.0 / gamma) * 255.0 + 0.5).astype(np.uint8)


def sample_gains(style: DomainStyle, rng: np.random.Generator) -> np.ndarray:
    """(3,) white-balance gains for one pair."""
    return np.array([_uniform(rng, g) for g in style.gains], dtype=np.float32)
