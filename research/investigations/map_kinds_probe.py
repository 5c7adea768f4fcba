"""Which gradient map localises: pixel AUROC of candidate maps on pasted-patch MNIST images.

    python research/investigations/map_kinds_probe.py 4,1,7 10    # classes, epochs (seed 0)

For each inlier class: the one-class split (seed 0), a model trained by the default recipe, the
first 600 pasted-patch test images of ``gradcon_tf.localisation`` and the per-layer cosine maps
m_i of ``gradients.decoder_scores(maps=True)``. Candidates: the reconstruction error, the signed
map -mean m_i, |m_i|, the negative part mean max(-m_i, 0), sums with beta = 0.12, and each layer
alone. Output: map_kinds_probe_output.txt (one line per class).
"""
import sys, numpy as np, tensorflow as tf, keras
from gradcon_tf import data as datasets, protocols, experiment, gradients, localisation, metrics
splits = datasets.load("mnist:../shared/datasets/mnist")
for inlier in [int(c) for c in sys.argv[1].split(",")]:
    split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=0)
    model = experiment.train_one_class(split, int(sys.argv[2]), seed=0, verbose=0)
    labels = np.asarray(split.test_is_anomaly, bool)
    pasted, masks = localisation.pasted_patches(split.test[~labels], split.test[labels], 0)
    x = model.preprocess(pasted[:600]); masks = masks[:600]
    lat = model.encoder(x)
    plan = gradients.plan_decoder(model.decoder)
    recon, cos, rec, lm = gradients.decoder_scores(plan, lat, x, model.reference_gradients, maps=True)
    lm = lm.numpy(); err = (rec.numpy() - x.numpy())[..., 0]
    variants = {"recon": err**2, "abs err": np.abs(err), "signed -mean m": -lm.mean(-1),
                "|m| mean": np.abs(lm).mean(-1), "neg part": np.maximum(-lm, 0).mean(-1), "recon+b*neg": err**2 + 0.12*np.maximum(-lm, 0).mean(-1), "recon+b*signed": err**2 - 0.12*lm.mean(-1)}
    for i in range(lm.shape[-1]):
        variants[f"-m{i+1}"] = -lm[..., i]; variants[f"|m{i+1}|"] = np.abs(lm[..., i])
    print(inlier, {k: round(metrics.auroc(v.ravel(), masks.ravel()), 3) for k, v in variants.items()}, flush=True)
