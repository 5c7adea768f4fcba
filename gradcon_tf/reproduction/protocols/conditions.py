"""The abnormal-conditions protocol (CURE-TSR, Fig. 4 and Table 2): one model per seed trained on
challenge-free images, AUROC per challenge type and level (:mod:`gradcon_tf.conditions`)."""

import numpy as np

from gradcon_tf import conditions, protocols
from gradcon_tf.evaluation import score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean


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
        source = conditions.source(self.request.data)
        return {s: {"challenges": source, "seed": s} for s in self.request.seeds}

    def load(self):
        return conditions.load(self.request.data, self.challenges, self.levels)

    def run(self, loaded, seed, train):
        settings = self.request.settings
        splits = conditions.condition_splits(
            loaded, settings.data, seed, self.challenges, self.levels, settings.validation_fraction
        )
        first = next(splits)
        split = first[1]
        trained = train(split, seed)
        results = conditions.evaluate_conditions(trained.model, [first, *splits])
        inliers = ~split.test_is_anomaly
        clean = protocols.OneClassSplit(
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
