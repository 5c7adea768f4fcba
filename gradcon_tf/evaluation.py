"""The score kinds of the paper's tables and the evaluation every protocol applies to them."""

from gradcon_tf import metrics

#: Score kinds: name in records and reports -> (key in ``GradCon.score()``, label).
SCORE_KINDS = {
    "gradcon": ("score", "GradCon"),
    "recon": ("recon", "recon only"),
    "grad": ("grad_loss", "grad only"),
    "latent": ("latent", "latent only"),  # only models with a latent loss (the VAEs)
}


def score_kinds(present):
    """The entries of SCORE_KINDS that ``present`` (run record, scores, summary) has."""
    return {name: v for name, v in SCORE_KINDS.items() if name != "latent" or "latent" in present}


def evaluate(scores, is_anomaly):
    """AUROC and Fig. 5 overlap of each score kind and of each decoder layer's cosine.

    ``scores``: ``GradCon.score()``'s arrays (at least score, recon, grad_loss, layer_cosines).
    """
    record = {}
    for name, (key, _) in score_kinds(scores).items():
        record[name] = {
            "auroc": metrics.auroc(scores[key], is_anomaly),
            "overlap": metrics.histogram_overlap(scores[key], is_anomaly),
        }
    # A low cosine means anomalous, so -cosine is the per-layer score (Table 2).
    record["layers"] = [
        {
            "auroc": metrics.auroc(-scores["layer_cosines"][:, i], is_anomaly),
            "overlap": metrics.histogram_overlap(-scores["layer_cosines"][:, i], is_anomaly),
        }
        for i in range(scores["layer_cosines"].shape[1])
    ]
    return record
