"""Folders of an inspection task in anomalib's convention: normal images, abnormal images and
optional masks matched to the abnormal images by file stem.

    NORMAL/<image>                          defect-free images
    ABNORMAL/<image>                        defective images (defect type: the folder's name)
    ABNORMAL/<type>/<image>                 ... or one sub-folder per defect type (or both)
    MASKS/[<type>/]<stem>[_mask].<ext>      the defect's pixels (> 0) of ABNORMAL/[<type>/]<stem>.*

A mask is looked for in the sub-folder of its image's defect type, then at the top of MASKS.
Scanning reads the files' headers only (size and mode), so that a missing folder, a folder
without images or an unreadable file is found before any work; reading decodes and resizes.
Images are grayscale when every image is, else RGB (as :mod:`gradcon_tf.data.folder`).
"""

import collections
import dataclasses
import os

import numpy as np

from gradcon_tf.data.base import DataFileError
from gradcon_tf.data.folder import IMAGE_EXTENSIONS, image_files, probe_image, read_image

#: A mask file may be named after its image's stem with this suffix (MVTec AD: 000_mask.png).
MASK_SUFFIX = "_mask"
#: A mask whose aspect ratio (width / height) differs from its image's by more than this share
#: does not show the same field of view: an error. Masks of another size are resized (nearest).
MAX_MASK_ASPECT_DIFFERENCE = 0.02


@dataclasses.dataclass
class ScannedImages:
    """The image files of a folder and what their headers say."""

    folder: str
    paths: list
    sizes: list  # (height, width) of each image
    defect_types: list  # of each image; "" for normal images
    grayscale: bool  # every image is grayscale

    def __len__(self):
        return len(self.paths)

    @property
    def channels(self):
        return 1 if self.grayscale else 3

    def common_size(self, image_size=None):
        """``image_size`` as (height, width), else the size every image has (an error when
        they differ: they must then be resized to one size)."""
        if image_size is not None:
            return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        counts = collections.Counter(self.sizes)
        if len(counts) == 1:
            return self.sizes[0]
        shown = ", ".join(f"{w}x{h} ({n})" for (h, w), n in counts.most_common(3))
        shown += ", ..." if len(counts) > 3 else ""
        raise DataFileError(
            f"{self.folder}: images of {len(counts)} sizes ({shown}); give an image size "
            "(--image-size H,W) to resize them all to it"
        )


def scan_folder(folder, what, defect_type=""):
    """:class:`ScannedImages` of the image files directly in ``folder`` (``what`` names the
    folder in errors: "normal", "abnormal")."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataFileError(f"{folder}: no such folder (the {what} images)")
    paths = image_files(folder)
    if not paths:
        raise DataFileError(
            f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the {what} folder"
        )
    probes = [probe_image(p) for p in paths]
    return ScannedImages(
        folder, paths, [p[:2] for p in probes], [defect_type] * len(paths), all(p[2] for p in probes)
    )


def scan_abnormal(folder):
    """:class:`ScannedImages` of the abnormal images: those in ``folder`` (of the defect type
    named after the folder) and those in each sub-folder (of the type named after it)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataFileError(f"{folder}: no such folder (the abnormal images)")
    parts = [(folder, os.path.basename(os.path.normpath(folder)))]
    parts += [
        (os.path.join(folder, name), name)
        for name in sorted(os.listdir(folder))
        if os.path.isdir(os.path.join(folder, name)) and not name.startswith(".")
    ]
    scans = [scan_folder(path, "abnormal", kind) for path, kind in parts if image_files(path)]
    if not scans:
        raise DataFileError(
            f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the abnormal folder or "
            "its sub-folders"
        )
    return ScannedImages(
        folder,
        [p for s in scans for p in s.paths],
        [z for s in scans for z in s.sizes],
        [t for s in scans for t in s.defect_types],
        all(s.grayscale for s in scans),
    )


def _mask_index(root):
    """{(sub-folder or "", stem without MASK_SUFFIX): mask path} of the masks under ``root``."""
    index = {}
    folders = [""] + sorted(
        n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)) and not n.startswith(".")
    )
    for sub in folders:
        for path in image_files(os.path.join(root, sub)):
            stem = os.path.splitext(os.path.basename(path))[0]
            stem = stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else stem
            index.setdefault((sub, stem), path)
    return index


@dataclasses.dataclass
class InspectionFolders:
    """The normal and abnormal images of an evaluation and the abnormal images' masks."""

    normal: ScannedImages
    abnormal: ScannedImages
    masks: list  # mask path of each abnormal image, None where it has none; [] without masks
    masks_resized: int  # masks of another size than their image (resized, nearest)

    @property
    def masks_missing(self):
        """Abnormal images without a mask (0 when no mask folder was given)."""
        return sum(m is None for m in self.masks)


def scan_inspection_folders(normal, abnormal, masks=None):
    """:class:`InspectionFolders` of the folders (headers only); raises :class:`DataFileError`
    for a missing folder, a folder without images, an unreadable file or a mask whose aspect
    ratio differs from its image's."""
    normal, abnormal = scan_folder(normal, "normal"), scan_abnormal(abnormal)
    if masks is None:
        return InspectionFolders(normal, abnormal, [], 0)
    masks = os.fspath(masks)
    if not os.path.isdir(masks):
        raise DataFileError(f"{masks}: no such folder (the masks)")
    index = _mask_index(masks)
    matched, resized = [], 0
    for path, size in zip(abnormal.paths, abnormal.sizes):
        sub = os.path.relpath(os.path.dirname(path), abnormal.folder)
        stem = os.path.splitext(os.path.basename(path))[0]
        mask = index.get(("" if sub == "." else sub, stem)) or index.get(("", stem))
        if mask is not None:
            resized += _mask_size_differs(mask, path, size)
        matched.append(mask)
    if all(m is None for m in matched):
        raise DataFileError(
            f"{masks}: no mask matches an abnormal image (expected MASKS/[<type>/]<stem>"
            f"[{MASK_SUFFIX}].png for ABNORMAL/[<type>/]<stem>.*)"
        )
    return InspectionFolders(normal, abnormal, matched, resized)


def _mask_size_differs(mask, image, image_size):
    """Whether ``mask`` is of another size than its image; an error for another aspect ratio."""
    height, width, _ = probe_image(mask)
    ratio = (width / height) / (image_size[1] / image_size[0])
    if abs(ratio - 1.0) > MAX_MASK_ASPECT_DIFFERENCE:
        raise DataFileError(
            f"{mask}: the mask is {width}x{height} but its image {image} is "
            f"{image_size[1]}x{image_size[0]}, another aspect ratio: not the image's mask?"
        )
    return (height, width) != tuple(image_size)


def read_images(paths, size, channels):
    """(N, H, W, C) uint8: each image file resized (bilinear) to ``size`` and converted to
    ``channels`` (1: luma, 3: RGB)."""
    return np.stack([read_image(p, size, channels) for p in paths])


def read_mask(path, size):
    """A mask file -> (H, W) bool at ``size``: pixels > 0 (any channel; alpha ignored),
    resized nearest."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA", "LA", "RGBA"):
                image = image.convert("RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataFileError(f"{path}: cannot read the mask ({error})") from None
    binary = array > 0 if array.ndim == 2 else np.any(array > 0, axis=-1)
    if binary.shape != tuple(size):
        pixels = Image.fromarray(binary.astype(np.uint8) * 255)
        binary = np.asarray(pixels.resize((size[1], size[0]), Image.NEAREST)) > 0
    return binary
