"""Write ELPV and the masked brick proxy as image folders in anomalib's layout, to run the
folder workflow on them as a user would (gradcon train --normal, gradcon evaluate --report).

    python research/report_look/write_folders.py --out ../look --seed 0

OUT/<set>/train: the normal images to train on (the split's training and validation images);
OUT/<set>/test/good; OUT/<set>/test/defects/<type>; OUT/brick/masks/<type>/<stem>_mask.png.
ELPV: the reproduce protocol's split of mono cells (defective: p > 0), the types by the experts'
defect probability (p0.33, p0.67, p1.00), no masks. Brick: the texture proxy of
research/investigations/texture_defects_probe.py (128 px crops, 4 synthetic defect types, masks).
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def save(folder, name, pixels):
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.asarray(pixels).squeeze()).save(os.path.join(folder, name))


def as_uint8(images):
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def write_elpv(out, seed):
    from gradcon_tf.data import elpv

    cells = elpv.load_elpv()
    split = elpv.elpv_split_indices(cells, "mono", seed, defective=">0")
    for i in np.r_[split.train, split.validation]:
        save(os.path.join(out, "train"), f"{i:04d}.png", cells.images[i])
    for i, anomalous in zip(split.test, split.test_is_anomaly):
        folder = (os.path.join(out, "test", "defects", f"p{cells.defect_probability[i]:.2f}")
                  if anomalous else os.path.join(out, "test", "good"))
        save(folder, f"{i:04d}.png", cells.images[i])


def write_brick(out, seed):
    sys.path.insert(0, os.path.join(ROOT, "docs", "investigations"))
    from texture_defects_probe import dataset

    data = dataset("brick", seed)
    for i, image in enumerate(as_uint8(np.concatenate([data["train"], data["validation"]]))):
        save(os.path.join(out, "train"), f"{i:04d}.png", image)
    for i, (image, kind, mask) in enumerate(zip(as_uint8(data["test"]), data["kinds"], data["masks"])):
        if kind == "normal":
            save(os.path.join(out, "test", "good"), f"{i:04d}.png", image)
        else:
            save(os.path.join(out, "test", "defects", kind), f"{i:04d}.png", image)
            save(os.path.join(out, "masks", kind), f"{i:04d}_mask.png", mask.astype(np.uint8) * 255)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_elpv(os.path.join(args.out, "elpv-mono"), args.seed)
    write_brick(os.path.join(args.out, "brick"), args.seed)
    for folder, _, names in sorted(os.walk(args.out)):
        if names:
            print(f"{len(names):5d} {folder}")


if __name__ == "__main__":
    main()
