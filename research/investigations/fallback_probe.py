"""What to train when a start collapses: the candidates, 20 epochs each, on the runs that
collapsed in collapse_test_probe (the new test fired and the unguarded run stayed dead).

Candidates (each selected by validation loss, as ``train_one_class``):
  data-same     the same draw with the output bias from data (what the guard does now)
  release-next  the release's draw from the next seed (seed + 10000), no guard
  data-next     the next seed's draw with the output bias from data

For MNIST the first two come from committed runs (docs/results/mnist-e100-guarded, 20-epoch
milestone; docs/results/mnist-release-init-redrawn, where draw 1 trained); release-next is
trained here where the next draw collapsed too, data-next is not measured on MNIST. One JSON line per (run, candidate) in ``--out`` (resumable).

    python research/investigations/fallback_probe.py --out research/investigations/fallback_probe.jsonl
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CANDIDATES = {  # name -> (initialization, seed offset)
    "data-same": ("data", 0),
    "release-next": ("release", 10_000),
    "data-next": ("data", 10_000),
}


def collapsed_runs():
    import collapse_test_table as table

    runs = []
    for path in sorted(os.listdir(HERE)):
        if path.startswith("collapse_test_probe-") and path.endswith(".jsonl"):
            runs += [json.loads(line) for line in open(os.path.join(HERE, path))]
    runs = [r for r in runs if r["dataset"] != "mnist4-first"]  # two epochs: no outcome
    return [r for r in runs if table.truth(r)[0] and table.fires(r, table.new_test)]


def _needs_training(run, candidate):
    """MNIST: only the release-next runs the committed folders lack (where the next seed's
    release draw collapsed too and the redrawn run went on to a later draw)."""
    if candidate != "release-next":
        return False
    name = f"class{run['inlier']}-seed{run['seed']}.json"
    path = os.path.join(HERE, "..", "..", "docs", "results", "mnist-release-init-redrawn", "runs", name)
    return json.load(open(path))["initialization"]["draw"] != 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--mnist", default="../shared/datasets/mnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--datasets", nargs="+", help="only the collapsed runs of these datasets")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    import collapse_test_probe as probe
    from gradcon_tf import collapse, experiment

    done = set()
    if os.path.exists(args.out):
        done = {(r["dataset"], r["inlier"], r["seed"], r["candidate"]) for r in map(json.loads, open(args.out))}
    makers = {}
    for run in collapsed_runs():
        if run["dataset"] == "mnist4" or (args.datasets and run["dataset"] not in args.datasets):
            continue
        for name, (initialization, offset) in CANDIDATES.items():
            if run["dataset"] == "mnist" and not _needs_training(run, name):
                continue
            key = (run["dataset"], run["inlier"], run["seed"], name)
            if key in done:
                continue
            if run["dataset"] not in makers:
                makers[run["dataset"]] = probe.runs(run["dataset"], args.mnist)[1]
            split = makers[run["dataset"]](run["inlier"], run["seed"])
            model = experiment.train_one_class(
                split, args.epochs, seed=run["seed"] + offset, verbose=0,
                initialization=initialization,
            )
            result = experiment.evaluate_one_class(model, split)
            record = {
                "dataset": run["dataset"], "inlier": run["inlier"], "seed": run["seed"],
                "candidate": name,
                "auroc": {"gradcon": result["score"], "recon": result["recon"], "grad": result["grad_loss"]},
                "dead": bool(collapse.is_dead(model, split.validation)),
            }
            with open(args.out, "a") as stream:
                stream.write(json.dumps(record) + "\n")
            print(key, record["auroc"], flush=True)
            keras.backend.clear_session()


if __name__ == "__main__":
    sys.exit(main())
