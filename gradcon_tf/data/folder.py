"""A folder with one sub-folder per class of ordinary image files (PNG, JPEG, BMP, ...).

``ROOT/<class name>/<image>``; class ids are the sorted sub-folder names' positions. When ROOT has
``train/`` and ``test/`` sub-folders, each is such a tree (same class names); otherwise the images
are split per class into train and test with a seeded stratified split (``test_fraction``).
Images are decoded with Pillow, converted to grayscale when every image is grayscale ("L", "1",
"I;16", ...) and to RGB otherwise, and must all have one size unless ``image_size`` is given (then
each is resized, bilinear).
"""

import os

import numpy as np

from gradcon_tf.data.base import DataFileError, LabeledImages, stratified_split
from gradcon_tf.portable.image_files import DECODE_ERRORS, IMAGE_SUFFIXES, ImageError
from gradcon_tf.portable.image_files import is_grey as is_grayscale
from gradcon_tf.portable.image_files import read_image as _read_file

IMAGE_EXTENSIONS = IMAGE_SUFFIXES


def _class_folders(root):
    if not os.path.isdir(root):
        raise DataFileError(f"{root}: no such directory")
    names = sorted(
        n
        for n in os.listdir(root)
        if os.path.isdir(os.path.join(root, n)) and not n.startswith(".")
    )
    if not names:
        raise DataFileError(f"{root}: no class sub-folders")
    return names


def image_files(folder):
    """The image files directly in ``folder`` (by extension, hidden files skipped), sorted."""
    return sorted(
        os.path.join(folder, n)
        for n in os.listdir(folder)
        if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")
    )


def read_image(path, image_size=None, channels=None):
    """One image file -> (H, W, C) uint8 array, C = 1 for grayscale modes, else 3 (RGB).

    ``channels`` (1 or 3): convert to Pillow's luma "L" or to RGB whatever the file's mode.
    Decoded by the scorers' own code (:func:`gradcon_tf.portable.image_files.read_image`).
    """
    try:
        return _read_file(path, channels, image_size).pixels
    except ImageError as error:
        raise DataFileError(str(error)) from None


def probe_image(path):
    """(height, width, grayscale) of an image file from its header, without decoding it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width, is_grayscale(image)
    except DECODE_ERRORS as error:
        raise DataFileError(f"{path}: cannot decode image ({error})") from None


def read_class_tree(root, class_names=None, image_size=None):
    """(LabeledImages, class names) of ``ROOT/<class>/<image>``."""
    names = _class_folders(root) if class_names is None else list(class_names)
    paths, labels = [], []
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise DataFileError(f"{folder}: missing class folder (expected classes {names})")
        files = image_files(folder)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataFileError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    images = [read_image(p, image_size) for p in paths]
    return LabeledImages(_stack(images, paths), np.asarray(labels)), names


def _stack(images, paths):
    """Stack to (N, H, W, C); grayscale images become RGB when any image is in colour."""
    channels = max(i.shape[-1] for i in images)
    if channels == 3:
        images = [np.repeat(i, 3, axis=-1) if i.shape[-1] == 1 else i for i in images]
    first = images[0].shape
    for image, path in zip(images, paths):
        if image.shape != first:
            raise DataFileError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} but {paths[0]} is "
                f"{first[1]}x{first[0]}; give image_size to resize them all"
            )
    return np.stack(images)


def load_image_folder(root, image_size=None, test_fraction=0.2, seed=0):
    """{"train", "test"} LabeledImages (plus "class_names") from an image folder tree."""
    root = os.fspath(root)
    if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
        train, names = read_class_tree(os.path.join(root, "train"), image_size=image_size)
        test, _ = read_class_tree(os.path.join(root, "test"), names, image_size=image_size)
        if train.images.shape[1:] != test.images.shape[1:]:
            raise DataFileError(
                f"{root}: train images are {train.images.shape[1:]} but test images are "
                f"{test.images.shape[1:]}"
            )
        return {"train": train, "test": test, "class_names": names}
    everything, names = read_class_tree(root, image_size=image_size)
    splits = stratified_split(everything.images, everything.labels, test_fraction, seed)
    splits["class_names"] = names
    return splits
