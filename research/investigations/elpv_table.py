"""The ELPV candidate table from elpv_candidates.py's records (Markdown on stdout).

    python research/investigations/elpv_table.py research/investigations/elpv_candidates.jsonl > research/investigations/elpv_table.md

One row per candidate, epochs and module type: test-half AUROC, mean +- std over the seeds run,
of GradCon's score, reconstruction alone, gradient alone, the z-scored sum and the PCA baseline,
for defective = probability >= 2/3 (and, in the second table, > 0); the dev-half GradCon AUROC
(what a choice may look at) beside it.
"""

import json
import sys
from collections import defaultdict

import numpy as np

PARTS = ("gradcon", "recon", "grad", "zsum", "grad_map", "map_zsum", "recon_top", "top_zsum", "pca")


def _cell(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def table(records, defective):
    groups = defaultdict(list)
    for r in records:
        groups[(r["candidate"], r["epochs"], r["module_type"])].append(r)
    lines = [
        f"Defective = probability {defective}; test half, mean ± std over seeds.",
        "",
        "| candidate | epochs | cells | seeds | alpha | GradCon | recon | grad | zsum | grad map p99 "
        "| maps zsum | recon map top | top zsum | PCA | dev GradCon |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"mono": 0, "poly": 1, "both": 2}
    for (candidate, epochs, cells), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        auroc = [r["auroc"][defective] for r in runs]
        alphas = sorted({round(r.get("alpha", 0.03), 4) for r in runs})
        alpha = f"{alphas[0]:g}" if len(alphas) == 1 else f"{alphas[0]:g}-{alphas[-1]:g}"
        cells_text = " | ".join(_cell([a[p]["test"] for a in auroc if p in a]) for p in PARTS)
        dev = _cell([a["gradcon"]["dev"] for a in auroc])
        lines.append(
            f"| {candidate} | {epochs} | {cells} | {len(runs)} | {alpha} | {cells_text} | {dev} |"
        )
    return lines


def main(paths):
    records = [json.loads(line) for path in paths for line in open(path) if line.strip()]
    out = ["# ELPV candidates (research/investigations/elpv_candidates.py)", ""]
    for defective in (">=2/3", ">0"):
        out += table(records, defective) + [""]
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["research/investigations/elpv_candidates.jsonl"]))
