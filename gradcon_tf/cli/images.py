"""The images a command scores: a .npy array, an IDX file, or image files (a file, a folder or a
glob) read by the portable module's :class:`ImageReader`, as ``gradcon-edge`` reads them."""

import errno
import os
import sys

from gradcon_tf.cli.common import UserError


def image_paths(spec):
    """Image files named by ``spec``: one file, a folder (its images, sorted) or a glob."""
    from gradcon_tf.portable.image_files import ImageError, find_images

    try:
        return find_images([spec])
    except ImageError as error:
        raise UserError(str(error)) from None


def is_image_spec(spec):
    from gradcon_tf.portable.image_files import is_image_name, is_pattern

    return is_image_name(spec) or os.path.isdir(spec) or is_pattern(spec)


def check_images_spec(spec):
    """``spec`` names something :func:`load_images` can read (not reading it)."""
    from gradcon_tf.portable.image_files import IMAGE_SUFFIXES, is_pattern

    if os.path.isdir(spec) or is_pattern(spec):
        image_paths(spec)
    elif not os.path.exists(spec):
        expected = "" if spec.lower().endswith((".npy",) + IMAGE_SUFFIXES) else (
            " (expected a .npy, an IDX file or images)")
        raise FileNotFoundError(errno.ENOENT, "No such file or directory" + expected, spec)


def check_images_readable(spec):
    """--strict: every image file ``spec`` names decodes (before TensorFlow loads)."""
    from gradcon_tf.portable.image_files import ImageError, read_image

    for path in image_paths(spec):
        try:
            read_image(path)
        except ImageError as error:
            raise UserError(f"{error} (--strict)") from None


def load_images(spec, image_shape, strict=False):
    """(images, names, unreadable) to score: a .npy array, an IDX file, or image files as the
    model takes them; ``unreadable``: the files skipped, each named on stderr (with ``strict``,
    the first is a :class:`UserError`)."""
    import numpy as np

    if spec.endswith(".npy"):
        try:
            images = np.load(spec, allow_pickle=False)
        except ValueError as error:
            raise UserError(f"{spec}: not a numpy array file ({error})") from None
        return images, None, []
    if is_image_spec(spec):
        return _read_image_files(image_paths(spec), image_shape, strict)
    if not os.path.exists(spec):
        raise UserError(f"{spec}: no such file")
    from gradcon_tf.data.idx import read_idx

    return read_idx(spec), None, []


def _read_image_files(paths, image_shape, strict):
    import numpy as np

    from gradcon_tf.portable.image_files import ImageError, ImageReader

    reader = ImageReader("gradcon", image_shape, strict=strict)
    names, images, unreadable = [], [], []
    for path in paths:
        try:
            pixels = reader.read(path)
        except ImageError as error:
            raise UserError(f"{error} (--strict)") from None
        if pixels is None:
            unreadable.append(path)
        else:
            names.append(path)
            images.append(pixels)
    for line in reader.notes():
        print(line, file=sys.stderr, flush=True)
    empty = np.zeros((0, *image_shape), np.uint8)
    return (np.stack(images) if images else empty), names, unreadable
