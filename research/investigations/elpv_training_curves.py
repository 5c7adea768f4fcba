"""ELPV: the validation reconstruction error per epoch under the paper's alpha, alpha scaled to
the data's pixel variance (gradcon_tf.loss_weights "data") and alpha = 0 (the plain CAE).

    python research/investigations/elpv_training_curves.py > research/investigations/elpv_training_curves.txt

Mono cells, seed 0, the 64 px staged network, 40 epochs, the library's recipe otherwise.
"""

import sys


def main():
    import keras

    from gradcon_tf import GradCon, loss_weights
    from gradcon_tf.data import elpv

    split = elpv.elpv_one_class_split(elpv.load_elpv(64), "mono", seed=0)
    variance = loss_weights.pixel_variance(split.train)
    print(f"mono cells at 64 px: {len(split.train)} training images, pixel variance {variance:.4f} "
          f"(the paper's MNIST: {loss_weights.PAPER_PIXEL_VARIANCE})")
    cases = {
        "paper (alpha 0.03)": loss_weights.loss_weights("paper"),
        "data": loss_weights.loss_weights("data", split.train),
        "CAE (alpha 0)": {"alpha": 0.0, "beta": 0.12},
    }
    for name, weights in cases.items():
        keras.utils.set_random_seed(0)
        model = GradCon(input_shape=split.train.shape[1:], **weights)
        model.compile()
        history = model.fit(split.train, validation_data=split.validation, epochs=40,
                            batch_size=64, verbose=0).history
        print(f"\n{name}: alpha {weights['alpha']:.4g}")
        print("val recon MSE by epoch:", " ".join(f"{v:.4f}" for v in history["val_recon_loss"]))
        print("val grad loss by epoch:", " ".join(f"{v:.2f}" for v in history["val_grad_loss"]))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
