"""Finding, decoding and sizing images for the scorer (Pillow + numpy)."""

import glob
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
GLOB_CHARACTERS = "*?["
_MODES = {1: "L", 3: "RGB"}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class ImageError(ValueError):
    """An image that cannot be scored, or an input that names none; the message names the file."""


def is_image_name(path):
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def list_images(folder):
    """Image files directly in ``folder`` (by suffix, hidden files skipped), sorted by name."""
    if not os.path.isdir(folder):
        raise ImageError(f"{folder}: not a directory")
    paths = (os.path.join(folder, name) for name in sorted(os.listdir(folder)))
    return [path for path in paths if is_image_name(path) and os.path.isfile(path)]


def check_image(path):
    """Raise :class:`ImageError` unless Pillow recognises ``path`` as an image (header only)."""
    try:
        with Image.open(path):
            pass
    except UnidentifiedImageError:
        if is_image_name(path):
            raise ImageError(f"{path}: not an image: its contents are in no format Pillow reads") from None
        raise ImageError(f"{path}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read image ({error.strerror or error})") from None


def find_images(inputs):
    """The image files named by ``inputs``, in order, each once.

    An input is an image file (its header is checked), a folder (its image files, sorted by name)
    or a glob pattern (sorted matches; ``**`` spans folders; matched folders are listed). Raises
    :class:`ImageError` for an input that gives no image.
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
        elif os.path.isfile(item):
            check_image(item)
            found = [item]
        elif any(c in item for c in GLOB_CHARACTERS):
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                if os.path.isdir(match):
                    found.extend(list_images(match))
                elif is_image_name(match):
                    found.append(match)
        else:
            raise ImageError(f"{item}: no such file or folder (expected an image, folder or glob pattern)")
        if not found:
            raise ImageError(f"{item}: no image files matched ({', '.join(IMAGE_SUFFIXES)})")
        paths.extend(found)
    return list(dict.fromkeys(paths))


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
    except _DECODE_ERRORS as error:
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
