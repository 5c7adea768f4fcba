"""Finding, decoding and sizing images for the scorer (Pillow + numpy)."""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
_MODES = {1: "L", 3: "RGB"}


class ImageError(ValueError):
    """An image that cannot be scored; the message names the file."""


def list_images(folder):
    """Image files directly in ``folder`` (by suffix, hidden files skipped), sorted by name."""
    if not os.path.isdir(folder):
        raise ImageError(f"{folder}: not a directory")
    names = sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
    )
    return [os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))]


def load_image(path, image_shape, resize=True):
    """``path`` as a uint8 (H, W, C) array of ``image_shape``; returns (array, note or None).

    Grey models get the image in mode L, colour models in RGB. An image of another size is resized
    (bilinear) when ``resize``, else rejected with :class:`ImageError`.
    """
    height, width, channels = image_shape
    if channels not in _MODES:
        raise ImageError(f"models with {channels} channels are not supported (1 or 3)")
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert(_MODES[channels])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: cannot decode image ({error})") from None
    note = None
    if image.size != (width, height):
        if not resize:
            raise ImageError(
                f"{path}: image is {image.size[0]}x{image.size[1]}, the model expects "
                f"{width}x{height} (drop --no-resize to resize it)"
            )
        note = f"{path}: resized {image.size[0]}x{image.size[1]} -> {width}x{height}"
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(height, width, channels), note
