"""Write test-split images of a one-class task as PNG files, e.g. for the edge demo.

    python -m export.sample_images --data mnist:/work/shared/datasets/mnist --inlier-class 0 \
        --count 16 --out /tmp/mnist_class0_test

Files are named ``{index:04d}_{inlier|outlier}.png``, the first ``--count`` images of the test set
of :func:`gradcon_tf.protocols.one_class_split` (same seed, so the same split as in training).
"""

import argparse
import os


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m export.sample_images", description=__doc__)
    parser.add_argument("--data", default="mnist:/work/shared/datasets/mnist")
    parser.add_argument("--inlier-class", type=int, default=0)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from PIL import Image

    from gradcon_tf import data, protocols

    datasets = data.load(args.data)
    split = protocols.one_class_split(datasets["train"], datasets["test"], args.inlier_class, seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    chosen = split.test[: args.count]
    for index, (image, is_anomaly) in enumerate(zip(chosen, split.test_is_anomaly)):
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        kind = "outlier" if is_anomaly else "inlier"
        Image.fromarray(pixels).save(os.path.join(args.out, f"{index:04d}_{kind}.png"))
    print(f"wrote {len(chosen)} images to {args.out}")


if __name__ == "__main__":
    main()
