"""The table of feature_study.py's records: AUROC, mean ± sample std (ddof=1) over seeds.

    python research/features/feature_study.py --table research/features/records.jsonl
"""

import collections
import json

import numpy as np

#: (variant, score) -> row label, in the table's order.
ROWS = {
    ("gradcon", "gradcon"): "GradCon on features (recon + beta * grad), image mean",
    ("gradcon", "recon"): "  its reconstruction only",
    ("gradcon", "grad"): "  its gradient only",
    ("gradcon", "cosine_1"): "  gradient, decoder layer 1 only",
    ("gradcon", "cosine_2"): "  gradient, decoder layer 2 only",
    ("gradcon", "cosine_3"): "  gradient, decoder layer 3 only",
    ("gradcon", "gradcon_local"): "GradCon on features, local image score (top 1 % of the map)",
    ("gradcon", "recon_map_max"): "  largest value of its reconstruction map",
    ("gradcon", "grad_map_max"): "  largest value of its gradient map",
    ("alpha0.1", "gradcon"): "alpha and beta / 10 (the library's recipe), image mean",
    ("alpha0.1", "recon"): "  its reconstruction only",
    ("alpha0.1", "gradcon_local"): "  its local image score (the recipe's default)",
    ("alpha0.1", "recon_map_max"): "  largest value of its reconstruction map",
    ("alpha0.1", "score_map_max"): "  largest value of its score map (recon + beta * grad)",
    ("alpha0", "recon"): "same autoencoder, alpha = 0 (DFR), reconstruction",
    ("alpha0", "gradcon"): "  alpha = 0, recon + beta * grad",
    ("alpha0", "gradcon_local"): "  alpha = 0, local image score",
    ("knn", "knn"): "nearest neighbour over the same features (max over the map)",
    ("knn", "knn_mean"): "  mean over the map",
}
#: Columns: (set, criterion or metric).
COLUMNS = {
    ("elpv-mono", ">=2/3"): "ELPV mono", ("elpv-poly", ">=2/3"): "ELPV poly",
    ("elpv-both", ">=2/3"): "ELPV both", ("brick", "image"): "brick image",
    ("brick", "pixel"): "brick pixel",
}


def cell(values):
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def print_table(paths):
    values = collections.defaultdict(list)
    for path in paths:
        with open(path) as lines:
            for record in map(json.loads, lines):
                for criterion, scores in record["auroc"].items():
                    for score, auroc in scores.items():
                        values[(record["variant"], score, record["set"], criterion)].append(auroc)
    print("| score | " + " | ".join(COLUMNS.values()) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for (variant, score), label in ROWS.items():
        cells = [cell(values.get((variant, score, s, c), [])) for s, c in COLUMNS]
        if any(cells):
            print(f"| {label} | " + " | ".join(cells) + " |")
