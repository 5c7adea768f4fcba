"""Issue 35's check: the restarted MNIST runs with Eq. 6's averages kept, against the same runs
with the averages cleared and against the runs of their class that were not restarted.

Reads the one-class run records of ``docs/results/mnist-e100-guarded`` as they are now (the
restarted runs trained again with ``restart_averages="kept"``) and as they were at ``--before``
(a commit whose records cleared the averages), and prints, at each budget (a milestone or the
last epoch), the gradient-alone and GradCon AUROC of every restarted run before and after, the
same class's unrestarted runs, and the means over all 30 runs.

    python research/restart/check.py --before c44e9c5
"""

import argparse
import glob
import json
import os
import subprocess

import numpy as np

FOLDER = "docs/results/mnist-e100-guarded"


def _records_now(folder):
    records = {}
    for path in sorted(glob.glob(os.path.join(folder, "runs", "*.json"))):
        with open(path) as handle:
            record = json.load(handle)
        records[(record["inlier_class"], record["seed"])] = record
    return records


def _records_at(commit, folder, keys):
    records = {}
    for inlier_class, seed in keys:
        path = f"{folder}/runs/class{inlier_class}-seed{seed}.json"
        text = subprocess.run(["git", "show", f"{commit}:{path}"], check=True,
                              capture_output=True, text=True).stdout
        records[(inlier_class, seed)] = json.loads(text)
    return records


def auroc(record, score, budget, epochs):
    """The record's ``score`` AUROC at ``budget`` epochs (a milestone or the last epoch)."""
    part = record if budget == epochs else record["milestones"][str(budget)]
    return part[score]["auroc"]


def restarted(record):
    return bool((record.get("initialization") or {}).get("collapsed"))


def table(now, before, budget, epochs):
    lines = [f"## {budget} epochs", "",
             "| class/seed | grad: cleared | grad: kept | GradCon: cleared | GradCon: kept | "
             "grad, same class not restarted |", "|---|---|---|---|---|---|"]
    cleared, kept, others = [], [], []
    for key in sorted(before):
        inlier_class, seed = key
        unrestarted = [auroc(r, "grad", budget, epochs) for (c, s), r in now.items()
                       if c == inlier_class and not restarted(r)]
        old = [auroc(before[key], s, budget, epochs) for s in ("grad", "gradcon")]
        new = [auroc(now[key], s, budget, epochs) for s in ("grad", "gradcon")]
        cleared.append(old[0])
        kept.append(new[0])
        others.append(np.mean(unrestarted))
        lines.append(f"| {inlier_class}/{seed} | {old[0]:.3f} | {new[0]:.3f} | {old[1]:.3f} | "
                     f"{new[1]:.3f} | {', '.join(f'{v:.3f}' for v in unrestarted)} |")
    lines.append(f"| mean | {np.mean(cleared):.3f} | {np.mean(kept):.3f} | | | "
                 f"{np.mean(others):.3f} (each run's class mean) |")
    differences = np.array(kept) - np.array(others)
    lines += ["", f"kept minus its class's unrestarted mean: mean {differences.mean():+.3f}, "
              f"{(differences < 0).sum()} of {len(differences)} below"]
    everything_before = {**now, **before}
    for name, runs in (("cleared (as committed before)", everything_before), ("kept", now)):
        means = {s: np.mean([auroc(r, s, budget, epochs) for r in runs.values()])
                 for s in ("gradcon", "recon", "grad")}
        lines.append(f"all {len(runs)} runs, {name}: GradCon {means['gradcon']:.3f}, "
                     f"recon {means['recon']:.3f}, grad {means['grad']:.3f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit of the cleared records")
    parser.add_argument("--folder", default=FOLDER)
    parser.add_argument("--budgets", default="20,100")
    args = parser.parse_args()
    now = _records_now(args.folder)
    epochs = next(iter(now.values()))["settings"]["epochs"]
    keys = [key for key, record in now.items() if restarted(record)]
    before = _records_at(args.before, args.folder, keys)
    if any(r["settings"].get("restart_averages", "cleared") != "cleared" for r in before.values()):
        raise SystemExit(f"{args.before}: those records kept the averages already")
    waiting = [key for key in keys if now[key]["settings"].get("restart_averages") != "kept"]
    if waiting:
        print(f"not yet trained with the averages kept: {sorted(waiting)}")
    for budget in (int(b) for b in args.budgets.split(",")):
        print(table(now, before, budget, epochs), end="\n\n")


if __name__ == "__main__":
    main()
