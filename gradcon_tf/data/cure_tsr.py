"""The real CURE-TSR dataset (Temel et al., 2017) in its distributed folder layout.

CURE-TSR ships folders such as ``Real_Train/ChallengeFree/``, ``Real_Train/Snow-3/``,
``Real_Test/...`` (and ``Unreal_*``) of ``.bmp`` files named
``sequenceType_signType_challengeType_challengeLevel_Index.bmp``:

* sequenceType: 01 real, 02 unreal; signType: 01..14;
* challengeType: 00 none, 01 decolorization, 02 lens blur, 03 codec error, 04 darkening,
  05 dirty lens, 06 exposure, 07 gaussian blur, 08 noise, 09 rain, 10 shadow, 11 snow, 12 haze;
* challengeLevel: 01..05 (00 for challenge-free); Index: the image's number, shared by the
  challenge-free image and its challenged versions.

The loader reads the metadata from the file names (the folder names are not needed), so any
sub-set of the folders works.
"""

import dataclasses
import os
import re

import numpy as np

from gradcon_tf.data.base import DataFileError
from gradcon_tf.data.folder import read_image

CHALLENGE_TYPES = {
    0: "challenge_free",
    1: "decolorization",
    2: "lens_blur",
    3: "codec_error",
    4: "darkening",
    5: "dirty_lens",
    6: "exposure",
    7: "gaussian_blur",
    8: "noise",
    9: "rain",
    10: "shadow",
    11: "snow",
    12: "haze",
}
#: The 8 types of the paper's abnormal-condition experiment.
PAPER_CHALLENGES = (
    "decolorization",
    "lens_blur",
    "dirty_lens",
    "exposure",
    "gaussian_blur",
    "rain",
    "snow",
    "haze",
)
_NAME = re.compile(r"^(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d+)\.bmp$", re.IGNORECASE)


@dataclasses.dataclass
class CureTSR:
    images: np.ndarray  # (N, S, S, 3) uint8, resized to image_size
    sequence: np.ndarray  # 1 real, 2 unreal
    sign_type: np.ndarray  # 1..14
    challenge_type: np.ndarray  # 0..12, see CHALLENGE_TYPES
    challenge_level: np.ndarray  # 0..5
    index: np.ndarray  # image number, shared across a clean image and its challenged versions
    paths: list

    def __len__(self):
        return len(self.images)

    def select(self, mask):
        return CureTSR(
            self.images[mask],
            self.sequence[mask],
            self.sign_type[mask],
            self.challenge_type[mask],
            self.challenge_level[mask],
            self.index[mask],
            [p for p, keep in zip(self.paths, mask) if keep],
        )

    def condition(self, challenge, level):
        """The images of ``challenge`` (a name of CHALLENGE_TYPES) at ``level``."""
        code = {v: k for k, v in CHALLENGE_TYPES.items()}[challenge]
        return self.select((self.challenge_type == code) & (self.challenge_level == level))

    def challenge_free(self):
        return self.select(self.challenge_type == 0)


def parse_name(path):
    """(sequence, sign type, challenge type, level, index) from a CURE-TSR file name."""
    match = _NAME.match(os.path.basename(path))
    if not match:
        raise DataFileError(
            f"{path}: not a CURE-TSR file name (expected "
            "sequenceType_signType_challengeType_challengeLevel_Index.bmp)"
        )
    fields = tuple(int(g) for g in match.groups())
    if fields[0] not in (1, 2) or fields[2] not in CHALLENGE_TYPES or not 0 <= fields[3] <= 5:
        raise DataFileError(f"{path}: fields out of range in the file name {fields[:4]}")
    return fields


def load_cure_tsr(root, image_size=28, challenges=None, levels=None, sequences=(1, 2)):
    """Every CURE-TSR ``.bmp`` under ``root`` (recursively), resized to image_size x image_size.

    ``challenges`` (names) and ``levels`` restrict what is decoded; challenge-free images are always
    kept. ``sequences``: 1 real, 2 unreal.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataFileError(f"{root}: no such directory")
    wanted = None
    if challenges is not None:
        codes = {v: k for k, v in CHALLENGE_TYPES.items()}
        unknown = set(challenges) - set(codes)
        if unknown:
            raise ValueError(f"unknown challenges {sorted(unknown)}; expected {list(codes)}")
        wanted = {0} | {codes[c] for c in challenges}
    paths, rows = [], []
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.lower().endswith(".bmp"):
                continue
            path = os.path.join(folder, name)
            fields = parse_name(path)
            if fields[0] not in sequences or (wanted is not None and fields[2] not in wanted):
                continue
            if levels is not None and fields[2] != 0 and fields[3] not in levels:
                continue
            paths.append(path)
            rows.append(fields)
    if not paths:
        raise DataFileError(f"{root}: no CURE-TSR .bmp files found")
    images = np.stack([_rgb(read_image(p, (image_size, image_size))) for p in paths])
    columns = np.asarray(rows, dtype=np.int64).T
    return CureTSR(images, *columns, paths)


def _rgb(image):
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
