"""Two recipes on the same (class, seed) runs, budget by budget: the table issue 13 asks for.

  python research/investigations/compare_recipes.py NEW_FOLDER RELEASE_FOLDER [--budgets 20,50]

Both folders are ``gradcon reproduce`` outputs with the same classes, seeds and splits. The shared
runs are those where the release's run trained (its GradCon AUROC at its last budget >= 0.8).
Prints, per budget: mean GradCon and gradient-alone AUROC of each recipe on the shared runs, and
on all runs; per class (mean +- std over seeds) for the new recipe and the release; how many of the
new recipe's runs restarted and how many are blank at each budget.
"""
import argparse, glob, json, os

import numpy as np


def runs(folder):
    records = {}
    for path in glob.glob(os.path.join(folder, "runs", "*.json")):
        with open(path) as handle:
            record = json.load(handle)
        if record.get("complete"):
            records[(record["inlier_class"], record["seed"])] = record
    return records


def at(record, budget, kind):
    """AUROC of score ``kind`` at ``budget`` epochs (a milestone, or the run's own budget)."""
    if budget == record["settings"]["epochs"]:
        return record[kind]["auroc"]
    milestone = record.get("milestones", {}).get(str(budget))
    return None if milestone is None else milestone[kind]["auroc"]


def mean_std(values):
    values = [v for v in values if v is not None]
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def fmt(pair):
    mean, std = pair
    return "-" if mean is None else f"{mean:.3f} ± {std:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new")
    parser.add_argument("release")
    parser.add_argument("--budgets", default="20,50")
    args = parser.parse_args()
    new, release = runs(args.new), runs(args.release)
    keys = sorted(set(new) & set(release))
    last = {k: release[k]["settings"]["epochs"] for k in keys}
    shared = [k for k in keys if release[k]["gradcon"]["auroc"] >= 0.8]
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{len(keys)} runs in both folders; {len(shared)} where the release's run trained")
    restarted = sum(bool(new[k].get("initialization", {}).get("collapsed")) for k in keys)
    print(f"new recipe: {restarted} of {len(keys)} runs restarted after a blank start")
    print("\n| budget | runs (mean ± std over runs) | new GradCon | release GradCon | new grad only | release grad only |")
    print("|---|---|---|---|---|---|")
    for budget in budgets:
        for label, subset in (("shared", shared), ("all", keys)):
            cells = [fmt(mean_std([at(r[k], budget, kind) for k in subset]))
                     for kind in ("gradcon",) for r in (new, release)]
            cells += [fmt(mean_std([at(r[k], budget, "grad") for k in subset])) for r in (new, release)]
            print(f"| {budget} | {label} ({len(subset)}) | " + " | ".join(cells) + " |")
    classes = sorted({c for c, _ in keys})
    for budget in budgets:
        print(f"\nPer class at {budget} epochs, GradCon AUROC, mean ± std over seeds:\n")
        print("| recipe | " + " | ".join(str(c) for c in classes) + " | mean |")
        print("|---|" + "---|" * (len(classes) + 1))
        for label, r in (("new", new), ("release", release)):
            cells = [fmt(mean_std([at(r[k], budget, "gradcon") for k in keys if k[0] == c])) for c in classes]
            seeds = sorted({s for _, s in keys})
            per_seed = [np.mean([at(r[(c, s)], budget, "gradcon") for c in classes if (c, s) in r
                                 and at(r[(c, s)], budget, "gradcon") is not None] or [np.nan]) for s in seeds]
            print(f"| {label} | " + " | ".join(cells) + f" | {fmt((float(np.nanmean(per_seed)), float(np.nanstd(per_seed))))} |")
        blank = [new[k].get("milestones", {}).get(str(budget), {}).get("blank") for k in keys]
        print(f"\nnew recipe, blank at {budget}: {sum(bool(b) for b in blank)} of {sum(b is not None for b in blank)} recorded")


if __name__ == "__main__":
    main()
