"""The pasted-patch anomalies and the pixel AUROC of the localisation experiment."""

import numpy as np
from sklearn.metrics import roc_auc_score

from gradcon_tf.reproduction.protocols import localisation


def images(n, seed, value):
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 20, size=(n, 28, 28, 1)).astype(np.uint8)
    out[:, 8:20, 8:20] = value  # ink in the middle
    return out


def test_pasted_patches_change_one_square_and_masks_the_changed_pixels():
    inliers, donors = images(20, 0, 0), images(5, 1, 255)
    pasted, masks = localisation.pasted_patches(inliers, donors, seed=3)
    again, masks_again = localisation.pasted_patches(inliers, donors, seed=3)
    np.testing.assert_array_equal(pasted, again)
    np.testing.assert_array_equal(masks, masks_again)
    assert pasted.dtype == np.uint8 and masks.shape == (20, 28, 28)
    for original, image, mask in zip(inliers, pasted, masks):
        changed = np.any(original != image, axis=-1)
        rows, columns = np.nonzero(changed)
        assert rows.max() - rows.min() < localisation.PATCH  # within one 10x10 square
        assert columns.max() - columns.min() < localisation.PATCH
        difference = np.abs(original.astype(int) - image.astype(int))[..., 0] / 255
        np.testing.assert_array_equal(mask, difference > localisation.CHANGED)
        assert mask.sum() >= 0.15 * localisation.PATCH**2  # the donor square had ink
    other, _ = localisation.pasted_patches(inliers, donors, seed=4)
    assert np.any(other != pasted)


def test_pixel_auroc_pools_every_pixel():
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(4, 6, 6)) < 0.2
    maps = {"recon_map": rng.normal(size=(4, 6, 6)) + masks, "grad_map": rng.normal(size=(4, 6, 6))}
    aurocs = localisation.pixel_aurocs(maps, masks)
    assert set(aurocs) == {"recon_map", "grad_map"}
    assert aurocs["recon_map"] == roc_auc_score(masks.ravel(), maps["recon_map"].ravel())
