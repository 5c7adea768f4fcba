"""Does the paper's CAE get stuck at the all-zero output early in training?

Trains the plain autoencoder (alpha = 0) and GradCon on 2,048 MNIST images of one class for a few
epochs, from the release's PyTorch-style initialisation with and without the output bias set from
the data, and prints the reconstruction loss per epoch next to the loss of predicting all zeros.

    python research/investigations/output_bias_probe.py ../shared/datasets/mnist [--class 3] [--seeds 3]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcon_tf  # noqa: E402
from gradcon_tf import data, protocols  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mnist_dir")
    parser.add_argument("--class", dest="inlier", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    splits = data.load(f"mnist:{args.mnist_dir}")
    split = protocols.one_class_split(splits["train"], splits["test"], args.inlier, seed=1)
    images = split.train[:2048]
    all_zero_loss = float(np.mean((images.astype(np.float32) / 255) ** 2))
    print(f"class {args.inlier}: loss of predicting all zeros = {all_zero_loss:.4f}")
    for alpha in (0.0, 0.03):
        for from_data in (False, True):
            for seed in range(args.seeds):
                keras.utils.set_random_seed(seed)
                model = gradcon_tf.GradCon(alpha=alpha, output_bias_from_data=from_data)
                model.compile()
                history = model.fit(images, epochs=args.epochs, batch_size=64, verbose=0)
                losses = " ".join(f"{v:.4f}" for v in history.history["recon_loss"])
                stuck = abs(history.history["recon_loss"][-1] - all_zero_loss) < 1e-3
                print(f"alpha {alpha:<4} bias from data {str(from_data):5} seed {seed}: "
                      f"recon loss per epoch {losses}{'  STUCK' if stuck else ''}", flush=True)


if __name__ == "__main__":
    main()
