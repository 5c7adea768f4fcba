"""Regional gradient scores: GradCon's gradient loss of each window of an image.

The paper's gradient loss compares the kernel gradients of the whole image's reconstruction
error with the reference (the running average of training gradients, Eq. 6); a small defect
changes that gradient little, since the rest of the image dominates it. Here each window of the
image gets its own: the kernel gradients of the error *inside the window only* (the target set to
the reconstruction outside it, so the output gradient is zero there), their cosine with the
reference per decoder layer, minus their mean; and the window's reconstruction error. Each
window position's two parts are z-scored by the validation images' (normal, never tested) mean
and std at that position; the image score is the highest window's (``reg_sum``: z(recon) +
z(grad); ``reg_grad``: z(grad) alone; ``reg_recon``: z(recon) alone; ``reg_grad_raw``: the
highest uncalibrated window gradient loss). Windows: a quarter of the working side, at a stride
of an eighth (7 x 7 windows). The same model's global scores (``gradcon``, ``recon``, ``grad``,
``zsum``) and the PCA baseline stand beside them; on textures the pixel AUROC of the window map
(each pixel the mean of the scores of the windows that hold it).

    python research/investigations/regional_gradient_probe.py --data elpv-mono elpv-poly \
        --seeds 0 1 2 --threads 1 --out research/investigations/regional_gradient.jsonl

Data, training and tables as score_calibration_probe.py (``--table`` prints them). The window
parts are checked against a per-window GradientTape by ``regional_gradient_check.py``
(``regional_gradient_check.txt``).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elpv_candidates import pca_scores  # noqa: E402
from score_calibration_probe import (  # noqa: E402
    BATCH, elpv_aurocs, elpv_data, probe_main, texture_aurocs, texture_data, trained,
)

WINDOW_FRACTION = 1 / 4
STRIDE_FRACTION = 1 / 8


def windows(height, width):
    """[(y0, y1, x0, x1)] of the windows of an image of that size."""
    side_y, side_x = max(1, int(height * WINDOW_FRACTION)), max(1, int(width * WINDOW_FRACTION))
    step_y, step_x = max(1, int(height * STRIDE_FRACTION)), max(1, int(width * STRIDE_FRACTION))
    return [(y, y + side_y, x, x + side_x)
            for y in range(0, height - side_y + 1, step_y)
            for x in range(0, width - side_x + 1, step_x)]


def window_masks(height, width):
    masks = np.zeros((len(windows(height, width)), height, width, 1), np.float32)
    for k, (y0, y1, x0, x1) in enumerate(windows(height, width)):
        masks[k, y0:y1, x0:x1] = 1.0
    return masks


def regional_parts(model, images, batch=4):
    """(recon, grad), each (N, windows): a window's reconstruction MSE and gradient loss."""
    import tensorflow as tf

    from gradcon_tf import gradients

    plan = gradients.plan_decoder(model.decoder)
    height, width = model.working_size
    masks = tf.constant(window_masks(height, width))
    count = int(masks.shape[0])
    area = tf.reduce_sum(masks, axis=(1, 2, 3))

    @tf.function(reduce_retracing=True)
    def parts(x):
        x = model.preprocess(x)
        latents, _ = model.encode(x)
        _, _, reconstructed = gradients.decoder_scores(
            plan, latents, x, model.reference_gradients, model.reconstruction_loss)
        n = tf.shape(x)[0]
        # (n * windows): image-major; the target is the image inside the window, the
        # reconstruction outside (no error there, so no gradient).
        tiled = tf.repeat(latents, count, axis=0)
        inside = tf.tile(masks, [n, 1, 1, 1])
        x_all, r_all = tf.repeat(x, count, axis=0), tf.repeat(reconstructed, count, axis=0)
        target = inside * x_all + (1.0 - inside) * r_all
        recon, cosines, _ = gradients.decoder_scores(
            plan, tiled, target, model.reference_gradients, model.reconstruction_loss)
        recon = tf.reshape(recon, [n, count]) * float(height * width) / area
        grad = tf.reshape(-tf.reduce_mean(cosines, axis=1), [n, count])
        return recon, grad

    recon, grad = zip(*(tuple(t.numpy() for t in parts(images[i:i + batch]))
                        for i in range(0, len(images), batch)))
    return np.concatenate(recon), np.concatenate(grad)


def regional_kinds(model, test, validation):
    """{kind: (N,) image scores} and {kind: (N, windows) calibrated window scores}."""
    (recon, grad), (ref_recon, ref_grad) = (regional_parts(model, a) for a in (test, validation))

    def z(values, reference):
        return (values - reference.mean(axis=0)) / (reference.std(axis=0) + 1e-12)

    window_scores = {"reg_sum": z(recon, ref_recon) + z(grad, ref_grad),
                     "reg_grad": z(grad, ref_grad), "reg_recon": z(recon, ref_recon)}
    kinds = {k: v.max(axis=1) for k, v in window_scores.items()}
    kinds["reg_grad_raw"] = grad.max(axis=1)
    return kinds, window_scores


def global_kinds(model, test, validation):
    out, reference = (model.score(a, batch_size=BATCH) for a in (test, validation))

    def z(key):
        return (out[key] - reference[key].mean()) / (reference[key].std() + 1e-12)

    return {"gradcon": out["score"], "recon": out["recon"], "grad": out["grad_loss"],
            "zsum": z("recon") + z("grad_loss")}


def window_map(scores, height, width):
    """(N, H, W): each pixel the mean score of the windows that hold it."""
    masks = window_masks(height, width)[..., 0]
    return np.einsum("nk,khw->nhw", scores, masks) / np.maximum(masks.sum(axis=0), 1.0)


def run(data_name, seed, epochs, highpass, learning_rate=None):
    from sklearn.metrics import roc_auc_score

    is_elpv = data_name.startswith("elpv-")
    data = (elpv_data(data_name.split("-", 1)[1], seed, highpass) if is_elpv
            else texture_data(data_name, seed, highpass))
    model, seconds = trained(data["train"], data["validation"], seed, epochs, learning_rate)
    started = time.perf_counter()
    kinds, window_scores = regional_kinds(model, data["test"], data["validation"])
    region_seconds = time.perf_counter() - started
    kinds.update(global_kinds(model, data["test"], data["validation"]))
    kinds["pca"] = pca_scores(data["train"], data["test"])
    record = {"train_seconds": round(seconds, 1), "regional_seconds": round(region_seconds, 1),
              "windows": int(next(iter(window_scores.values())).shape[1]),
              "selected_epoch": model.selected_epoch, "alpha": model.alpha}
    if is_elpv:
        return {**record, "auroc": elpv_aurocs(kinds, data["defect_probability"], seed)}
    image, by_defect = texture_aurocs(kinds, data)
    masks = data["masks"]
    height, width = masks.shape[1:3]
    pixel = {k: float(roc_auc_score(masks.ravel(), window_map(v, height, width).ravel()))
             for k, v in window_scores.items()}
    return {**record, "image_auroc": image, "image_auroc_by_defect": by_defect,
            "pixel_auroc": pixel}


if __name__ == "__main__":
    sys.exit(probe_main(run, __doc__))
