"""A synthetic REAL/FAKE demo dataset, so the pipeline runs end to end without downloads.

This is a stand-in, not real photographs and not real AI-generated images. Both classes are
drawn from one procedural scene distribution (colour gradients, shapes, 1/f texture), so colour
and brightness carry no label information. They differ only in how the pixels were formed:

* REAL: the scene rendered at full resolution plus per-pixel Gaussian sensor noise.
* FAKE: the same kind of scene passed through a decoder-like path: area-downsampled by 2,
  upsampled 2x bilinearly with a small phase-dependent gain (the checkerboard a strided
  transposed convolution leaves behind) and only faint noise, so high frequencies are weaker.

Noise levels overlap between the classes and both are saved as JPEG at the same quality, so a
model has to learn the upsampling signature rather than read off one trivial cue. Accuracy on
this data says nothing about accuracy on real generators.

Any image_size works: 32 (the default, CIFAKE's size) or full resolution, e.g. 256
(`demo.image_size=256`, as experiment=demo_crop sets it). The signature is one or two
pixels wide, so resizing a 256 px image to a 32 px input all but erases it, while crops of
it at native resolution keep it: the case crop mode (preprocessing.py) exists for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from aidetector.errors import AidetectorError
from aidetector.labels import FAKE, REAL

JPEG_QUALITY = 90
REAL_NOISE_SIGMA = (2.0, 5.0)
FAKE_NOISE_SIGMA = (0.0, 1.5)
CHECKERBOARD_GAIN = (0.005, 0.02)


def generate_demo_dataset(
    root: Path, n_per_class: int, image_size: int = 32, seed: int = 0
) -> None:
    """Write n_per_class JPEGs to root/REAL and root/FAKE, replacing whatever root held.

    Every image is seeded by (seed, class index, image index), so the same arguments always
    produce byte-identical files.
    """
    if n_per_class < 1:
        raise AidetectorError(f"n_per_class must be at least 1, got {n_per_class}")
    if image_size < 8:
        raise AidetectorError(f"image_size must be at least 8, got {image_size}")
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    for class_index, class_name in enumerate((REAL, FAKE)):
        class_dir = root / class_name
        class_dir.mkdir(parents=True)
        prefix = class_name.lower()
        for i in range(n_per_class):
            rng = np.random.default_rng([seed, class_index, i])
            pixels = (
                render_fake(rng, image_size) if class_name == FAKE else render_real(rng, image_size)
            )
            Image.fromarray(pixels).save(
                class_dir / f"{prefix}_{i:05d}.jpg", format="JPEG", quality=JPEG_QUALITY
            )


def render_real(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Return a "camera" image: a full-resolution scene plus sensor noise, HxWx3 uint8."""
    scene = render_scene(rng, image_size)
    sigma = rng.uniform(*REAL_NOISE_SIGMA)
    return _to_uint8(scene + rng.normal(0.0, sigma, scene.shape))


def render_fake(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Return a "generated" image: a scene decoded from half resolution, HxWx3 uint8."""
    low_size = (image_size + 1) // 2
    scene = render_scene(rng, 2 * low_size)
    low = scene.reshape(low_size, 2, low_size, 2, 3).mean(axis=(1, 3))
    up = _upsample2x(low)
    # Unequal gain per output phase: what uneven kernel overlap in a stride-2 deconv produces.
    gain = 1.0 + rng.uniform(*CHECKERBOARD_GAIN) * rng.choice([-1.0, 1.0], size=(2, 2, 1))
    gain -= gain.mean() - 1.0
    up *= np.tile(gain, (low_size, low_size, 1))
    up = up[:image_size, :image_size]
    sigma = rng.uniform(*FAKE_NOISE_SIGMA)
    return _to_uint8(up + rng.normal(0.0, sigma, up.shape))


def render_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return a noiseless size x size x 3 float scene: gradient, shapes and 1/f texture."""
    coords = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    start, end = rng.uniform(20.0, 235.0, size=(2, 3))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.clip((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) + 0.5, 0.0, 1.0)
    image: np.ndarray = start + (end - start) * ramp[..., None]
    for _ in range(rng.integers(1, 5)):
        colour = rng.uniform(20.0, 235.0, size=3)
        alpha = rng.uniform(0.6, 1.0) * _shape_mask(rng, x, y, size)
        image = image * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    texture = _pink_noise(rng, size) * rng.uniform(3.0, 12.0)
    tint = 1.0 + rng.uniform(-0.2, 0.2, size=3)
    return image + texture[..., None] * tint


def _shape_mask(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Return an anti-aliased coverage mask in [0, 1] of a random rotated ellipse or rectangle."""
    cx, cy = rng.uniform(0.1, 0.9, size=2)
    rx, ry = rng.uniform(0.08, 0.35, size=2)
    theta = rng.uniform(0.0, np.pi)
    u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
    distance: np.ndarray
    if rng.random() < 0.5:
        inside = 1.0 - np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        distance = inside * min(rx, ry)
    else:
        distance = np.minimum(rx - np.abs(u), ry - np.abs(v))
    # About one pixel of soft edge at any resolution, like a lens/sensor's point spread.
    return np.clip(distance * size + 0.5, 0.0, 1.0)


def _pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return size x size noise with a 1/f amplitude spectrum, zero mean and unit std."""
    freqs = np.fft.fftfreq(size)
    radius = np.sqrt(freqs[:, None] ** 2 + freqs[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius
    spectrum[0, 0] = 0.0
    noise = np.fft.ifft2(spectrum).real
    return noise / max(float(noise.std()), 1e-8)


def _upsample2x(image: np.ndarray) -> np.ndarray:
    """Return the image upsampled 2x along both axes with half-pixel-centred bilinear weights."""
    for axis in (0, 1):
        padded = np.concatenate(
            [np.take(image, [0], axis=axis), image, np.take(image, [-1], axis=axis)], axis=axis
        )
        n = image.shape[axis]
        centre = np.take(padded, range(1, n + 1), axis=axis)
        before = np.take(padded, range(0, n), axis=axis)
        after = np.take(padded, range(2, n + 2), axis=axis)
        even = 0.75 * centre + 0.25 * before
        odd = 0.75 * centre + 0.25 * after
        image = np.stack([even, odd], axis=axis + 1).reshape(
            *image.shape[:axis], 2 * n, *image.shape[axis + 1 :]
        )
    return image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8."""
    rounded: np.ndarray = np.clip(np.rint(image), 0, 255)
    return rounded.astype(np.uint8)
