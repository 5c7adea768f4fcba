"""The confusion tables of the old and new collapse tests, from collapse_test_probe's runs.

Truth: a run *collapsed* when, trained 20 epochs without a guard, its validation reconstruction
loss fell by less than 5 % from epoch 1 (a dead decoder cannot learn: those fell by 0-1 %; the
slowest run that trained, inverted MNIST class 8, by 11 %). For the MNIST runs (the probe trained
3 epochs) the 20-epoch losses are those of the same runs in docs/results/mnist-release-init,
which kept the total validation loss only (recon + alpha * gradient loss, the second term moving
by up to alpha as the running averages form): there a fall of less than 15 % (dead runs: 3-11 %,
the slowest that trained: 33 %). Their first three epochs are checked against the probe's
(within 3 %: the batches there were averaged unweighted). A test *fires* when it calls the run collapsed where its guard judged: the old
one after epoch 1 or 2 (the intensity-range rule, ``old_blank``), the new one after epoch 2
(``gradcon_tf.collapse.is_collapsed`` on the recorded statistics).

    python research/investigations/collapse_test_table.py > research/investigations/collapse_test_table.md
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from gradcon_tf import collapse  # noqa: E402

FELL = 0.95  # reconstruction loss at 20 / at 1 below this: trained
FELL_TOTAL = 0.85  # the same for the total validation loss (the stored MNIST runs)
NAMES = {
    "mnist": "MNIST, 10 classes x seeds 0-2",
    "mnist4": "MNIST class 4, seeds 3-29 (the release's worst class)",
    "digits": "scikit-learn digits (8x8, upscaled), 10 classes x 3 seeds",
    "elpv": "ELPV solar cells (300 px -> 64 -> 28), mono / poly / both x 3 seeds",
    "thin": "MNIST eroded 2x2 and dimmed to 35 %, 10 classes (2,000 train images)",
    "thin-bright": "MNIST eroded 2x2, full brightness, 10 classes (2,000 train images)",
    "inverted": "MNIST inverted (white background), 10 classes (2,000 train images)",
    "colour": "MNIST in random colours (RGB), 10 classes (2,000 train images)",
    "photos": "RGB 32x32 patches of two photographs, 2 classes x 3 seeds",
}


def truth(run):
    """(collapsed, loss ratio 20/1, where the 20-epoch loss comes from)."""
    if run["dataset"] == "mnist":
        path = os.path.join(
            ROOT, "docs/results/mnist-release-init/runs",
            f"class{run['inlier']}-seed{run['seed']}.json",
        )
        stored = json.load(open(path))["val_loss"]
        probe = [s["val_loss"] for s in run["stats"][1:4]]
        # Those records average the validation batches unweighted (the probe weights them by
        # size), which moves the values by up to ~1 %; the training itself is the same.
        same = all(abs(a - b) <= 0.03 * abs(b) for a, b in zip(probe, stored[:3]))
        ratio = stored[19] / stored[0]
        return ratio > FELL_TOTAL, ratio, "stored" if same else "stored (first epochs differ!)"
    stats = run["stats"]
    ratio = stats[20]["recon"] / stats[1]["recon"]
    return ratio > FELL, ratio, "probe"


def fires(run, test):
    """The epoch after which ``test`` calls the run dead in the guard's window: the old guard
    judged after epochs 1 and 2, the new one after epoch 2."""
    epochs = (1, 2) if test is old_test else (2,)
    return next((e for e in epochs if test(run["stats"][e])), None)


def new_test(statistics):
    return collapse.is_collapsed(statistics)


def old_test(statistics):
    return statistics["old_blank"]


def _stored_fallbacks(collapsed):
    """The MNIST candidates from committed runs: (run, candidate) -> AUROCs at 20 epochs."""
    found = {}
    for run in collapsed:
        name = f"class{run['inlier']}-seed{run['seed']}.json"
        guarded = json.load(open(os.path.join(ROOT, "docs/results/mnist-e100-guarded/runs", name)))
        if guarded["initialization"]["draw"] == 1 and guarded["initialization"]["output_bias_from_data"]:
            found[(run["inlier"], run["seed"], "data-same")] = guarded["milestones"]["20"]
        redrawn = json.load(open(os.path.join(ROOT, "docs/results/mnist-release-init-redrawn/runs", name)))
        if redrawn["initialization"]["draw"] == 1:  # the next seed's release draw trained
            found[(run["inlier"], run["seed"], "release-next")] = redrawn["milestones"]["20"]
        kept = json.load(open(os.path.join(ROOT, "docs/results/mnist-release-init/runs", name)))
        found[(run["inlier"], run["seed"], "release-kept")] = kept["milestones"]["20"]
    return {k: {kind: v[kind]["auroc"] for kind in ("gradcon", "recon", "grad")} for k, v in found.items()}


def fallback_table(runs):
    """Markdown: each candidate's mean AUROC over the collapsed runs, on all the runs it was
    measured on and on the runs where every candidate of that dataset was (paired)."""
    collapsed = [r for r in runs if truth(r)[0] and fires(r, new_test)]
    measured = {}  # (dataset, inlier, seed) -> {candidate: auroc}
    mnist = [r for r in collapsed if r["dataset"] == "mnist"]
    for (inlier, seed, candidate), auroc in _stored_fallbacks(mnist).items():
        measured.setdefault(("mnist", inlier, seed), {})[candidate] = auroc
    paths = sorted(glob.glob(os.path.join(HERE, "fallback_probe*.jsonl")))
    for record in [json.loads(line) for path in paths for line in open(path)]:
        key = (record["dataset"], record["inlier"], record["seed"])
        measured.setdefault(key, {})[record["candidate"]] = record["auroc"]
    for run in collapsed:  # the collapsed run itself, trained on
        key = (run["dataset"], run["inlier"], run["seed"])
        if run["dataset"] != "mnist" and key in measured:
            measured[key]["release-kept"] = run["auroc"]
    lines = [
        "| data | candidate | runs | GradCon | recon | grad | paired runs | GradCon | grad |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def mean(values, kind):
        return sum(v[kind] for v in values) / len(values)

    for dataset in sorted({k[0] for k in measured}):
        runs_here = {k: v for k, v in measured.items() if k[0] == dataset}
        candidates = sorted({c for v in runs_here.values() for c in v})
        paired = [v for v in runs_here.values() if all(c in v for c in candidates)]
        for candidate in candidates:
            values = [v[candidate] for v in runs_here.values() if candidate in v]
            pair = [v[candidate] for v in paired]
            lines.append(
                f"| {dataset} | {candidate} | {len(values)} | {mean(values, 'gradcon'):.3f} | "
                f"{mean(values, 'recon'):.3f} | {mean(values, 'grad'):.3f} | {len(pair)} | "
                + (f"{mean(pair, 'gradcon'):.3f} | {mean(pair, 'grad'):.3f} |" if pair else "- | - |")
            )
    return "\n".join(lines)


def _decisions_only(runs, trained_to_20):
    """The guard's decisions on the MNIST class-4 draws trained two epochs only."""
    both = sum(bool(fires(r, old_test)) and bool(fires(r, new_test)) for r in runs)
    old_only = [r["seed"] for r in runs if fires(r, old_test) and not fires(r, new_test)]
    new_only = [r["seed"] for r in runs if fires(r, new_test) and not fires(r, old_test)]
    neither = len(runs) - both - len(old_only) - len(new_only)
    return (
        f"\nMNIST class 4, the guard's two epochs of {len(runs)} more draws (seeds "
        f"{min(r['seed'] for r in runs)}-{max(r['seed'] for r in runs)}; "
        f"{len(trained_to_20)} of them also trained 20 epochs, in the table above): both tests "
        f"fire on {both}, neither on {neither}, only the old one on {old_only or 'none'}, only "
        f"the new one on {new_only or 'none'}."
    )


def main():
    runs = [json.loads(line) for path in sorted(glob.glob(os.path.join(HERE, "collapse_test_probe-*.jsonl"))) for line in open(path)]
    trained_to_20 = {r["seed"] for r in runs if r["dataset"] == "mnist4"}
    first_epochs = [r for r in runs if r["dataset"] == "mnist4-first"]
    runs = [r for r in runs if r["dataset"] != "mnist4-first"]
    print("# Collapse tests against what the unguarded run did in 20 epochs\n")
    print(f"`python research/investigations/collapse_test_table.py` (from `collapse_test_probe-*.jsonl`; "
          f"new test: variation < {collapse.MAX_DEAD_VARIATION} and slope < {collapse.MAX_DEAD_SLOPE}).\n")
    print("| data | runs | collapsed (truth) | old: restarts | old: false restarts | old: missed | new: restarts | new: false restarts | new: missed |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = [0] * 8
    details = []
    for name in NAMES:
        chosen = [r for r in runs if r["dataset"] == name]
        if not chosen:
            continue
        row = [len(chosen), 0, 0, 0, 0, 0, 0, 0]
        for run in chosen:
            collapsed, ratio, source = truth(run)
            old, new = fires(run, old_test), fires(run, new_test)
            row[1] += collapsed
            row[2] += old is not None
            row[3] += old is not None and not collapsed
            row[4] += old is None and collapsed
            row[5] += new is not None
            row[6] += new is not None and not collapsed
            row[7] += new is None and collapsed
            if collapsed or old or new or ratio > 0.8:
                s1, s2 = run["stats"][1], run["stats"][2]
                details.append(
                    f"| {name} | {run['inlier']} | {run['seed']} | {'yes' if collapsed else 'no'} ({ratio:.2f}, {source}) "
                    f"| {old or '-'} | {new or '-'} | {s1['variation']:.3f} / {s1['slope']:.4f} "
                    f"| {s2['variation']:.3f} / {s2['slope']:.4f} | {run['auroc']['gradcon']:.3f} / {run['auroc']['grad']:.3f} |"
                )
        totals = [t + v for t, v in zip(totals, row)]
        print(f"| {NAMES[name]} | " + " | ".join(map(str, row)) + " |")
    print("| **all** | " + " | ".join(f"**{v}**" for v in totals) + " |")
    if first_epochs:
        print(_decisions_only(first_epochs, trained_to_20))
    print("\nRuns that collapsed, fell by less than 20 %, or that a test called collapsed (loss ratio = loss at 20 / at 1; "
          "statistics: variation / slope; AUROC of the unguarded run: GradCon / gradient alone, "
          "after 3 epochs for MNIST, 20 otherwise):\n")
    print("| data | class | seed | collapsed | old fires after | new fires after | epoch 1 | epoch 2 | AUROC |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(details))
    healthy = [r for r in runs if not truth(r)[0]]
    dead = [r for r in runs if truth(r)[0]]

    print("\n## What to train when the test fires\n")
    print("Candidates on the runs that collapsed (20 epochs, selected by validation loss; "
          "`fallback_probe.py`; MNIST from the committed runs): data-same = the same draw with "
          "the output bias from data (the guard's restart), release-next = the release's draw "
          "from seed + 10000, no guard (MNIST: from mnist-release-init-redrawn where that draw "
          "trained, trained by the probe where it collapsed too), data-next = the next seed with the bias from data, "
          "release-kept = the collapsed run trained on.\n")
    print(fallback_table(runs))
    def extreme(group, key, pick):
        return pick(r["stats"][2][key] for r in group)

    print(f"\nMargins after epoch 2. Runs that trained: lowest slope "
          f"{extreme(healthy, 'slope', min):.4f} (lowest variation "
          f"{extreme(healthy, 'variation', min):.3f}: outputs that had barely moved). Runs that "
          f"collapsed: highest slope {extreme(dead, 'slope', max):.4f}, highest variation "
          f"{extreme(dead, 'variation', max):.3f}.")


if __name__ == "__main__":
    main()
