"""CURE-TSR-style challenging conditions, synthesised on clean images at 5 levels.

The paper's abnormal-condition experiment (Sec. 5, Table 7) uses CURE-TSR's challenge types
Decolorization, Lens blur, Dirty lens, Exposure, Gaussian blur, Rain, Snow and Haze, each at
levels 1 (mild) to 5 (severe). CURE-TSR made them with Adobe After Effects; these are
re-implementations in the same spirit, not the dataset's pixels, for datasets that have no
challenge versions (use :mod:`gradcon_tf.data.cure_tsr` for the real ones). Every function maps
float images (N, H, W, C) in [0, 1] to float32 images of the same shape in [0, 1], is
deterministic given ``seed``, and grows monotonically in strength with the level.
"""

import numpy as np
from scipy import ndimage

LEVELS = (1, 2, 3, 4, 5)

# Strength per level 1..5 (index 0 unused). Chosen so that level 1 is visible but mild and level
# 5 is severe on 28x28 to 32x32 images; the paper gives no numbers for its synthetic versions.
_DECOLOR = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fraction of saturation removed
_LENS_RADIUS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0)  # pillbox radius, pixels
_DIRT_OPACITY = (0.0, 0.25, 0.35, 0.45, 0.55, 0.65)
_DIRT_BLOBS = (0, 3, 4, 5, 6, 7)
_EXPOSURE_GAIN = (1.0, 1.4, 1.8, 2.3, 2.9, 3.6)
_GAUSS_SIGMA = (0.0, 0.6, 1.0, 1.4, 1.8, 2.2)
_RAIN_DENSITY = (0.0, 0.01, 0.02, 0.035, 0.05, 0.07)  # streak origins per pixel
_SNOW_DENSITY = (0.0, 0.02, 0.04, 0.07, 0.10, 0.14)  # flakes per pixel
_HAZE_TRANSMISSION = (1.0, 0.8, 0.65, 0.5, 0.38, 0.26)
_HAZE_LIGHT = 0.85


def _gray(images):
    if images.shape[-1] == 3:
        return images @ np.asarray([0.299, 0.587, 0.114], np.float32)[:, None]
    return images


def decolorization(images, level, rng):
    """Blend towards the luminance image (a no-op on grayscale images)."""
    amount = _DECOLOR[level]
    return images * (1 - amount) + _gray(images) * amount


def _pillbox(radius):
    size = int(np.ceil(radius))
    y, x = np.mgrid[-size : size + 1, -size : size + 1]
    # Anti-aliased disk: pixel weight = coverage estimate by distance to the circle.
    kernel = np.clip(radius + 0.5 - np.sqrt(x**2 + y**2), 0.0, 1.0)
    return kernel / kernel.sum()


def _filter_each(images, function):
    out = np.empty_like(images)
    for n in range(images.shape[0]):
        for c in range(images.shape[-1]):
            out[n, ..., c] = function(images[n, ..., c])
    return out


def lens_blur(images, level, rng):
    """Defocus: convolution with a disk (pillbox) kernel."""
    kernel = _pillbox(_LENS_RADIUS[level])
    return _filter_each(images, lambda plane: ndimage.convolve(plane, kernel, mode="nearest"))


def gaussian_blur(images, level, rng):
    sigma = _GAUSS_SIGMA[level]
    return _filter_each(images, lambda plane: ndimage.gaussian_filter(plane, sigma, mode="nearest"))


def dirty_lens(images, level, rng):
    """Dark, soft smudges at random places (one pattern per image)."""
    n, h, w, _ = images.shape
    y, x = np.mgrid[0:h, 0:w]
    out = images.copy()
    for i in range(n):
        dirt = np.zeros((h, w), np.float32)
        for _ in range(_DIRT_BLOBS[level]):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            radius = rng.uniform(0.08, 0.2) * min(h, w)
            dirt = np.maximum(dirt, np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2)))
        mask = (_DIRT_OPACITY[level] * dirt)[..., None]
        out[i] = images[i] * (1 - mask) + 0.1 * mask
    return out


def exposure(images, level, rng):
    """Over-exposure: a gain on the intensities, saturating at white."""
    return images * _EXPOSURE_GAIN[level] + 0.05 * (_EXPOSURE_GAIN[level] - 1)


def rain(images, level, rng):
    """Bright, slightly slanted streaks, then a light blur (rain in front of the lens)."""
    n, h, w, _ = images.shape
    out = images.copy()
    length = max(3, int(round(0.2 * h)))
    for i in range(n):
        streaks = np.zeros((h, w), np.float32)
        count = rng.poisson(_RAIN_DENSITY[level] * h * w)
        for _ in range(count):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            for t in range(length):
                y, x = y0 + t, x0 + t // 3
                if y < h and x < w:
                    streaks[y, x] = 0.8
        mask = ndimage.gaussian_filter(streaks, 0.5)[..., None]
        out[i] = ndimage.gaussian_filter(images[i], (0.3 * level / 5, 0.3 * level / 5, 0))
        out[i] = out[i] * (1 - mask) + mask
    return out


def snow(images, level, rng):
    """White flakes of 1-2 pixels at random places, slightly blurred, and a whitish veil."""
    n, h, w, _ = images.shape
    out = images.copy()
    for i in range(n):
        flakes = np.zeros((h, w), np.float32)
        count = rng.poisson(_SNOW_DENSITY[level] * h * w)
        ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
        flakes[ys, xs] = 1.0
        big = rng.random(count) < 0.3
        flakes[np.minimum(ys[big] + 1, h - 1), xs[big]] = 1.0
        flakes[ys[big], np.minimum(xs[big] + 1, w - 1)] = 1.0
        mask = np.clip(ndimage.gaussian_filter(flakes, 0.4) * 1.5, 0, 1)[..., None]
        veil = 0.04 * level
        out[i] = (images[i] * (1 - veil) + veil) * (1 - mask) + mask
    return out


def haze(images, level, rng):
    """Atmospheric scattering: I = J t + A (1 - t), uniform transmission t, airlight A."""
    t = _HAZE_TRANSMISSION[level]
    return images * t + _HAZE_LIGHT * (1 - t)


#: The paper's 8 challenge types, in its order.
CHALLENGES = {
    "decolorization": decolorization,
    "lens_blur": lens_blur,
    "dirty_lens": dirty_lens,
    "exposure": exposure,
    "gaussian_blur": gaussian_blur,
    "rain": rain,
    "snow": snow,
    "haze": haze,
}


def apply_challenge(images, challenge, level, seed=0):
    """``images`` (N, H, W, C; uint8 or float in [0, 1]) under ``challenge`` at ``level`` 1..5.

    Returns the same dtype as given (uint8 in, uint8 out), the same shape.
    """
    if challenge not in CHALLENGES:
        raise ValueError(f"unknown challenge {challenge!r}; expected one of {list(CHALLENGES)}.")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}.")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
    as_uint8 = images.dtype == np.uint8
    floats = images.astype(np.float32) / 255.0 if as_uint8 else images.astype(np.float32)
    rng = np.random.default_rng([seed, level, list(CHALLENGES).index(challenge)])
    out = np.clip(CHALLENGES[challenge](floats, level, rng), 0.0, 1.0).astype(np.float32)
    return np.round(out * 255.0).astype(np.uint8) if as_uint8 else out
