"""The overlay sheet of docs/maps.md: a trained model's anomaly maps on normal, pasted-patch and
other-class MNIST test images, one overlay (``gradcon_tf.portable.overlays``) per row.

    python research/investigations/overlay_sheet.py --data mnist:../shared/datasets/mnist \\
        --inlier-class 4 --epochs 20 --out docs/maps_overlays.png

Trains one model by the default recipe (one-class split, seed 0, calibrated at fpr 0.05 on the
held-out normal images), then draws 3 clean inlier test images, 3 of them with a pasted patch
(``gradcon_tf.localisation``, seed 0) and 2 test images of other classes.
"""

import argparse

import numpy as np
from PIL import Image

from gradcon_tf import data as datasets
from gradcon_tf import experiment, localisation, protocols
from gradcon_tf.portable import overlays


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--inlier-class", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    splits = datasets.load(args.data)
    split = protocols.one_class_split(splits["train"], splits["test"], args.inlier_class, seed=0)
    model = experiment.train_one_class(split, args.epochs, seed=0, fpr=0.05, verbose=0)
    labels = np.asarray(split.test_is_anomaly, bool)
    clean, others = split.test[~labels], split.test[labels]
    pasted, _ = localisation.pasted_patches(clean[:3], others, seed=0)
    rows = [(image, "normal (inlier test image)") for image in clean[:3]]
    rows += [(image, "the same with a pasted patch") for image in pasted]
    rows += [(image, "another class") for image in others[:2]]
    images = np.stack([image for image, _ in rows])
    outputs = model.score(images, maps=True)
    tiles = [
        overlays.overlay_image(
            image, {key: outputs[key][i] for key, _ in overlays.PANELS}, title,
            float(outputs["score"][i]), float(outputs["p_value"][i]), bool(outputs["is_anomaly"][i]),
        )
        for i, (image, title) in enumerate(rows)
    ]
    sheet = Image.new("RGB", (tiles[0].width, sum(t.height for t in tiles)), "white")
    top = 0
    for tile in tiles:
        sheet.paste(tile, (0, top))
        top += tile.height
    sheet.save(args.out, format="PNG")
    print(f"wrote {args.out}: {len(tiles)} overlays; scores {np.round(outputs['score'], 4).tolist()}")


if __name__ == "__main__":
    main()
