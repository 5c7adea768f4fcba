"""Write ELPV cells of one module type as image folders in anomalib's convention, the held-out
split of the ELPV protocol (gradcon_tf.data.elpv.elpv_split_indices, defective = p >= 2/3), for
the folder workflow (`gradcon train --normal`, `gradcon evaluate`).

    pip install elpv-dataset
    python research/investigations/elpv_folders.py --cells mono --seed 0 --out elpv-mono
    # -> OUT/good/ (the protocol's training and validation cells), OUT/test/good/ (its held-out
    #    functional cells), OUT/test/defects/p067/ and p100/ (defective by probability); 300 px PNGs
"""

import argparse
import os
import sys

from PIL import Image

from gradcon_tf.data import elpv


def write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="mono", choices=elpv.MODULE_TYPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cells = elpv.load_elpv()
    split = elpv.elpv_split_indices(cells, args.cells, args.seed, defective=">=2/3")
    normal = list(split.train) + list(split.validation)
    for index in normal:
        write(os.path.join(args.out, "good", f"{index:04d}.png"), cells.images[index][..., 0])
    for index, abnormal in zip(split.test, split.test_is_anomaly):
        folder = (f"defects/p{round(100 * cells.defect_probability[index]):03d}" if abnormal
                  else "good")
        write(os.path.join(args.out, "test", folder, f"{index:04d}.png"), cells.images[index][..., 0])
    print(f"wrote {len(normal)} normal training cells and {len(split.test)} test cells "
          f"({int(split.test_is_anomaly.sum())} defective) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
