"""Image files in: finding them, decoding, converting to the model's channels, resizing.

Both scorers (``gradcon score`` and ``gradcon-edge``) read files through :func:`load_image`, so
the same file gives the same pixels, hence the same scores: decoded with Pillow, converted to
grey with Pillow's luma (``convert("L")``, ITU-R 601-2) or to RGB by repeating the grey value,
then resized (bilinear) to the model's size.
"""

import collections
import glob
import os
import sys
from collections import namedtuple

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
GLOB_CHARACTERS = "*?["
MODES = {1: "L", 3: "RGB"}
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P")
#: Integer grey modes deeper than 8 bits: Pillow's convert("L") clips them at 255 (a 16-bit image
#: turns white), so they are scaled by their nominal range instead (:func:`_to_8_bits`).
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L")
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)

#: A decoded file: ``pixels`` (H, W, C) uint8 as the model takes them, and the file's own size
#: and channels (1 for grey modes, else 3).
LoadedImage = namedtuple("LoadedImage", "pixels width height channels")


class ImageError(ValueError):
    """An image that cannot be scored, or an input that names none; the message names the file."""


def is_image_name(path):
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def list_images(folder, recursive=False):
    """Image files in ``folder`` (by suffix, hidden files and folders skipped), sorted by name;
    ``recursive``: in its sub-folders too, each folder's files before its sub-folders'."""
    if not os.path.isdir(folder):
        raise ImageError(f"{folder}: not a directory")
    names = sorted(os.listdir(folder))
    paths = [os.path.join(folder, name) for name in names]
    found = [path for path in paths if is_image_name(path) and os.path.isfile(path)]
    if recursive:
        for name, path in zip(names, paths):
            if not name.startswith(".") and os.path.isdir(path):
                found.extend(list_images(path, recursive=True))
    return found


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

    An input is an image file (its header is checked), a folder (its image files and its
    sub-folders', sorted by name) or a glob pattern (sorted matches; ``**`` spans folders; matched
    folders are listed, sub-folders included). Raises
    :class:`ImageError` for an input that gives no image.
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item, recursive=True)
        elif os.path.isfile(item):
            check_image(item)
            found = [item]
        elif is_pattern(item):
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                if os.path.isdir(match):
                    found.extend(list_images(match, recursive=True))
                elif is_image_name(match):
                    found.append(match)
        else:
            raise ImageError(f"{item}: no such file or folder (expected an image, folder or glob pattern)")
        if not found:
            raise ImageError(f"{item}: no image files matched ({', '.join(IMAGE_SUFFIXES)})")
        paths.extend(found)
    return list(dict.fromkeys(paths))


def is_pattern(text):
    return any(c in text for c in GLOB_CHARACTERS)


def is_grey(image):
    """Whether a PIL image is grey: a grey mode, or a palette of grey colours only."""
    if image.mode != "P":
        return image.mode in GREY_MODES
    palette = np.asarray(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool(len(palette)) and bool(np.all(palette == palette[:, :1]))


def read_image(path, channels=None, size=None, resize=True):
    """``path`` decoded: a :class:`LoadedImage`.

    ``channels``: 1 (grey: Pillow's luma) or 3 (RGB); None keeps the file's. ``size``:
    (height, width): an image of another size is resized (bilinear) when ``resize``, else
    rejected. Raises :class:`ImageError` naming the file.
    """
    if channels not in (None, *MODES):
        raise ImageError(f"models with {channels} channels are not supported (1 or 3)")
    try:
        with Image.open(path) as image:
            own_width, own_height = image.size
            if size is not None and image.size != (size[1], size[0]) and not resize:
                raise ImageError(
                    f"{path}: image is {own_width}x{own_height}, the model expects "
                    f"{size[1]}x{size[0]} (drop --no-resize to resize it)"
                )
            image.load()
            own = 1 if is_grey(image) else 3
            image = _to_8_bits(image) if image.mode in HIGH_DEPTH_MODES else image
            image = image.convert(MODES[own])
            if channels not in (None, own):
                image = image.convert(MODES[channels])
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except DECODE_ERRORS as error:
        raise ImageError(f"{path}: cannot decode image ({error})") from None
    pixels = array[..., None] if array.ndim == 2 else array
    return LoadedImage(pixels, own_width, own_height, own)


def _to_8_bits(image):
    """A 16-bit (or 32-bit integer) grey image as 8-bit "L", scaled by its nominal range:
    0..65535 -> 0..255, or 0..2**32 - 1 when a value exceeds 16 bits."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if values.max(initial=0.0) <= 65535 else 4294967295.0
    return Image.fromarray(np.round(np.clip(values, 0.0, top) * (255.0 / top)).astype(np.uint8), "L")


def load_image(path, image_shape, resize=True):
    """``path`` as a model of ``image_shape`` (H, W, C) takes it (:func:`read_image`)."""
    return read_image(path, image_shape[-1], image_shape[:2], resize)


class ResizeTally:
    """The image files resized to a model's ``size`` (height, width), counted by their own size,
    for one summary line instead of a line per file."""

    def __init__(self, size):
        self.size = tuple(size)
        self.sizes = collections.Counter()  # (width, height) -> how many files
        self.first = None

    def add(self, path, image):
        """Count ``image`` (a :class:`LoadedImage` of ``path``) if it was resized."""
        if (image.height, image.width) != self.size:
            self.sizes[(image.width, image.height)] += 1
            self.first = self.first or path

    def note(self, shown=3):
        """"N images resized to WxH (from their sizes, the commonest first; first PATH)", or
        None when none was."""
        if not self.sizes:
            return None
        count = sum(self.sizes.values())
        sizes = ", ".join(f"{w}x{h}" + (f" ({n})" if len(self.sizes) > 1 else "")
                          for (w, h), n in self.sizes.most_common(shown))
        more = ", ..." if len(self.sizes) > shown else ""
        return (f"{count} image{'s' if count > 1 else ''} resized to {self.size[1]}x{self.size[0]} "
                f"(from {sizes}{more}; first {self.first})")


class ImageReader:
    """Image files read as a model of ``image_shape`` takes them, by the command line ``prog``
    (``gradcon`` or ``gradcon-edge``), so that both read, skip and report files alike.

    A file that cannot be read is named on stderr and skipped (counted in ``skipped``), or, with
    ``strict``, raises its :class:`ImageError`. Resized files and files of the other channel
    count are summed up in one line each (:meth:`notes`).
    """

    KINDS = {1: "grayscale", 3: "RGB"}

    def __init__(self, prog, image_shape, resize=True, strict=False):
        self.prog = prog
        self.image_shape = tuple(image_shape)
        self.resize = resize
        self.strict = strict
        self.resized = ResizeTally(self.image_shape[:2])
        self.read_count = 0
        self.skipped = 0
        self.converted = []

    def read(self, path):
        """The model's pixels (H, W, C) uint8 of ``path``, or None: skipped."""
        try:
            image = load_image(path, self.image_shape, self.resize)
        except ImageError as error:
            if self.strict:
                raise
            print(f"{self.prog}: {error} (skipped)", file=sys.stderr, flush=True)
            self.skipped += 1
            return None
        self.read_count += 1
        self.resized.add(path, image)
        if image.channels != self.image_shape[-1]:
            self.converted.append(path)
        return image.pixels

    def notes(self):
        """The lines to print once the files are read: the resized ones (a note, as expected
        for a model trained at another size) and the converted ones (a warning)."""
        lines, resized = [], self.resized.note()
        if resized:
            lines.append(f"{self.prog}: note: {resized}")
        if self.converted:
            lines.append(
                f"{self.prog}: warning: {len(self.converted)} of {self.read_count} images are not "
                f"{self.KINDS[self.image_shape[-1]]} like the model (e.g. {self.converted[0]}): "
                "converted")
        return lines
