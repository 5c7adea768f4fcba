"""Write the texture-defects proxy (texture_defects_probe.py) as image folders in anomalib's
convention, for the folder workflow (`gradcon train --normal`, `gradcon evaluate --masks`).

    python research/investigations/texture_folders.py --texture brick --seed 0 --out brick
    # -> OUT/good/ (train + validation crops), OUT/test/good/, OUT/test/defects/<type>/,
    #    OUT/ground_truth/<type>/<stem>_mask.png
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from texture_defects_probe import dataset  # noqa: E402


def write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texture", default="brick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    data = dataset(args.texture, args.seed)
    as_uint8 = lambda image: np.round(image[..., 0] * 255).astype(np.uint8)  # noqa: E731
    normal = np.concatenate([data["train"], data["validation"]])
    for i, image in enumerate(normal):
        write(os.path.join(args.out, "good", f"{i:04d}.png"), as_uint8(image))
    for i, (image, kind, mask) in enumerate(zip(data["test"], data["kinds"], data["masks"])):
        if kind == "normal":
            write(os.path.join(args.out, "test", "good", f"{i:04d}.png"), as_uint8(image))
        else:
            write(os.path.join(args.out, "test", "defects", kind, f"{i:04d}.png"), as_uint8(image))
            write(os.path.join(args.out, "ground_truth", kind, f"{i:04d}_mask.png"),
                  mask.astype(np.uint8) * 255)
    print(f"wrote {len(normal)} normal and {len(data['test'])} test images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
