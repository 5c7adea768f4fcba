"""The abnormal-condition experiment (CURE-TSR, Fig. 4 and Table 2): its splits, its evaluation
and its protocol.

Clean images are the inliers, the same images under a challenge (type, level) the outliers: one
model per seed trained on challenge-free images (10% held out for validation), evaluated on each
challenge type at each level. The training and validation images depend only on the seed, so one
model serves every (challenge, level). Challenges are synthesised on any dataset's images
(:mod:`gradcon_tf.data.challenges`) or read from the real CURE-TSR folders (``cure_tsr:DIR`` with
``DIR/Real_Train`` and ``DIR/Real_Test``).
"""

import os

import numpy as np

from gradcon_tf import data as datasets
from gradcon_tf import evaluation
from gradcon_tf.data import challenges, cure_tsr
from gradcon_tf.evaluation import score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean
from gradcon_tf.splits import OneClassSplit

def abnormal_condition_split(
    clean_train, clean_test, challenge, level, seed=0, validation_fraction=0.1
):
    """The CURE-TSR protocol on synthetic challenges: clean images are the inliers.

    Train on ``clean_train`` (images, any labels ignored) with ``validation_fraction`` held out;
    test = every ``clean_test`` image (inlier) plus the same images under ``challenge`` at
    ``level`` (outliers), made by :func:`gradcon_tf.data.challenges.apply_challenge`.
    """
    from gradcon_tf.data.challenges import apply_challenge

    challenged = apply_challenge(clean_test, challenge, level, seed=seed)
    return _clean_vs_challenged(clean_train, clean_test, challenged, seed, validation_fraction)


def cure_tsr_split(train, test, challenge, level, seed=0, validation_fraction=0.1):
    """The paper's CURE-TSR protocol on the real data (:class:`gradcon_tf.data.cure_tsr.CureTSR`).

    Train on the challenge-free training images; test on the challenge-free test images
    (inliers) and the test images of ``challenge`` at ``level`` (outliers).
    """
    clean_test = test.challenge_free()
    challenged = test.condition(challenge, level)
    if len(challenged) == 0:
        raise ValueError(f"no test images of {challenge} at level {level}.")
    return _clean_vs_challenged(
        train.challenge_free().images,
        clean_test.images,
        challenged.images,
        seed,
        validation_fraction,
    )


def _clean_vs_challenged(clean_train, clean_test, challenged, seed, validation_fraction):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clean_train))
    n_validation = max(1, int(round(validation_fraction * len(clean_train))))
    test = np.concatenate([clean_test, challenged])
    is_anomaly = np.concatenate([np.zeros(len(clean_test), bool), np.ones(len(challenged), bool)])
    shuffle = rng.permutation(len(test))
    return OneClassSplit(
        train=clean_train[order[n_validation:]],
        validation=clean_train[order[:n_validation]],
        test=test[shuffle],
        test_is_anomaly=is_anomaly[shuffle],
    )


# ---------------------------------------------------------------------- one model per seed

SYNTHESISED = "synthesised"
REAL = "CURE-TSR"


def source(data):
    """Where the challenged images of the dataset spec ``data`` come from."""
    return REAL if data.partition(":")[0] == "cure_tsr" else SYNTHESISED


def load_conditions(data, names=None, levels=None):
    """The clean train and test data of ``data``: images (synthesised) or CureTSR (real)."""
    if source(data) == REAL:
        root = data.partition(":")[2]
        return {
            part: cure_tsr.load_cure_tsr(os.path.join(root, folder), challenges=names,
                                         levels=levels, sequences=(1,))
            for part, folder in (("train", "Real_Train"), ("test", "Real_Test"))
        }
    splits = datasets.load(data)
    return {"train": splits["train"].images, "test": splits["test"].images}


def condition_splits(loaded, data, seed, names=None, levels=None, validation_fraction=0.1):
    """Yield ((challenge, level), OneClassSplit), the paper's 8 challenges at levels 1..5 by
    default, one at a time (the test sets of all conditions together would be large)."""
    make = cure_tsr_split if source(data) == REAL else abnormal_condition_split
    for name in names or cure_tsr.PAPER_CHALLENGES:
        for level in levels or challenges.LEVELS:
            yield (name, level), make(
                loaded["train"], loaded["test"], name, level, seed=seed,
                validation_fraction=validation_fraction,
            )


def evaluate_conditions(model, splits):
    """{challenge: {level: :func:`gradcon_tf.evaluation.evaluate` of its test set}} over the
    ((challenge, level), split) pairs of ``splits``."""
    results = {}
    for (name, level), split in splits:
        scores = model.score(split.test)
        results.setdefault(name, {})[str(level)] = evaluation.evaluate(
            scores, split.test_is_anomaly
        )
    return results


# ---------------------------------------------------------------------- the protocol

@register
class Conditions(base.Protocol):
    """One model per seed (the request's classes are unused); ``challenges``, ``levels``: a subset
    of the paper's 8 types and 5 levels."""

    name = "conditions"
    description = (
        "abnormal conditions (CURE-TSR): one model per seed trained on challenge-free images, 10% "
        "held out for validation; test = the challenge-free test images (inliers) + the test "
        "images under one challenge type at one level (outliers)"
    )
    uses_classes = False

    def __init__(self, request, challenges=None, levels=None, **options):
        super().__init__(request, **options)
        self.challenges, self.levels = challenges, levels

    def runs(self):
        kind = source(self.request.data)
        return {s: {"challenges": kind, "seed": s} for s in self.request.seeds}

    def load(self):
        return load_conditions(self.request.data, self.challenges, self.levels)

    def run(self, loaded, seed, train):
        settings = self.request.settings
        splits = condition_splits(
            loaded, settings.data, seed, self.challenges, self.levels, settings.validation_fraction
        )
        first = next(splits)
        split = first[1]
        trained = train(split, seed)
        results = evaluate_conditions(trained.model, [first, *splits])
        inliers = ~split.test_is_anomaly
        clean = OneClassSplit(
            split.train, split.validation, split.test[inliers], split.test_is_anomaly[inliers]
        )
        scores = {f"clean_{k}": v for k, v in training.stored_scores(trained.model, clean).items()}
        sizes = {"train": int(len(split.train)), "validation": int(len(split.validation)),
                 "test_clean": int(np.sum(inliers))}
        return training.Outcome(trained, sizes, {"conditions": results}, scores)

    def headline(self, summary):
        means = [level["gradcon"]["mean"] for levels in summary["auroc"].values()
                 for level in levels.values() if "gradcon" in level]
        return {"metric": "AUROC of the model's score, mean over challenge types, levels and seeds",
                "value": float(sum(means) / len(means)) if means and summary["complete"] else None}

    def summarize(self, records, settings):
        """AUROC of each score kind and each decoder layer per (challenge, level), mean and std
        over seeds."""
        seeds = self.request.seeds
        missing = [f"conditions-seed{s}" for s in seeds if s not in records]
        first = next(iter(records.values()), {})

        def over_seeds(challenge, level, pick):
            return summaries.mean_and_std(
                [pick(r["conditions"][challenge][level]) for r in records.values()]
            )

        table = {
            challenge: {
                level: {
                    **{
                        name: over_seeds(challenge, level, lambda c, n=name: c[n]["auroc"])
                        for name in score_kinds(result)
                    },
                    "layers": [
                        over_seeds(challenge, level, lambda c, i=i: c["layers"][i]["auroc"])
                        for i in range(len(result["layers"]))
                    ],
                }
                for level, result in levels.items()
            }
            for challenge, levels in first.get("conditions", {}).items()
        }
        return {
            **summaries.head(settings, self.request.command, self.description,
                             {"seeds": list(seeds)}, missing),
            "challenges": first.get("challenges", "synthesised"),
            "auroc": table,
            "std_note": "mean and sample standard deviation (ddof=1) over seeds",
            "hyperparameters": summaries.hyperparameters(settings),
            **summaries.seconds(records),
            "environment": provenance.environment(),
            "reference": summaries.references()["conditions"].get(self.request.dataset_name, {}),
        }

    def report(self, summary, figures=()):
        """AUROC per challenge type and level, one table per score kind, and the per-layer AUROC
        (Table 2) averaged over levels."""
        table = summary["auroc"]
        body = [f"Seeds {summary['runs']['seeds']}; AUROC, mean ± std over seeds.", ""]
        if table:
            body += _condition_tables(table)
        title = self.title(summary, f"abnormal conditions ({summary['challenges']} challenges)")
        return report.Report(title, body + [""], protocol=summary["protocol"])


def _condition_tables(table):
    """The tables of a summary's {challenge: {level: aggregates}}."""
    first = next(iter(next(iter(table.values())).values()))
    levels = list(next(iter(table.values())))
    lines = []
    for name, (_, label) in score_kinds(first).items():
        rows = []
        for challenge, by_level in table.items():
            cells = [by_level[level][name] for level in levels]
            mean = float(np.mean([c["mean"] for c in cells]))
            rows.append([challenge, *(format_mean(c["mean"], c["std"]) for c in cells),
                         f"**{format_mean(mean)}**"])
        header = ["challenge", *(f"level {level}" for level in levels), "mean"]
        lines += [f"## {label}", "", *report.table(header, rows), ""]
    n_layers = len(first["layers"])
    rows = [
        [challenge, *(
            format_mean(float(np.mean([by_level[lv]["layers"][i]["mean"] for lv in levels])))
            for i in range(n_layers)
        )]
        for challenge, by_level in table.items()
    ]
    return lines + [
        "## Per decoder layer (Table 2): AUROC of -cos of that layer's gradient alone, mean over "
        "levels",
        "",
        *report.table(["challenge", *(f"layer {i + 1}" for i in range(n_layers))], rows),
    ]
