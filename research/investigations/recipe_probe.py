"""Candidate training recipes against the release's: first-epoch collapse and AUROC by epoch.

  python research/investigations/recipe_probe.py MNIST_DIR OUT.jsonl CANDIDATE EPOCHS CLASS:SEED ...

CANDIDATE: ``release`` (PyTorch's initialisation), ``bias`` (output bias from data),
``warmupN`` (the release's initialisation, learning rate ramped over N steps). A (class, seed)
uses the split and initial weights that ``gradcon reproduce`` gives it. One JSON line per run:
the brightest validation reconstruction after each of the first 3 epochs (blank: < 0.5 of the
brightest input) and the test AUROCs (GradCon, recon, grad) of the best-validation weights at
epochs 1, 2, 3, 5, 10, 20, 50, 100 (those within EPOCHS). Runs already in OUT are skipped.
"""
import json, os, sys, time

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from gradcon_tf import data as datasets, protocols
from gradcon_tf.callbacks import KeepBestWeights
from gradcon_tf.model import GradCon
from gradcon_tf.optimizers import CorrectedEpsilonAdam, LinearWarmup

MILESTONES = (1, 2, 3, 5, 10, 20, 50, 100)


class Probe(KeepBestWeights):
    def __init__(self, split):
        super().__init__(restore=False)
        self.split, self.brightest, self.auroc = split, [], {}

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch < 3:
            self.brightest.append(max(float(np.max(self.model(self.split.validation[i:i + 512])))
                                      for i in range(0, len(self.split.validation), 512)))
        if epoch + 1 in MILESTONES:
            _, weights = self.selected()
            current = self.model.get_weights()
            self.model.set_weights(weights)
            s = self.model.score(self.split.test)
            self.model.set_weights(current)
            y = self.split.test_is_anomaly
            self.auroc[epoch + 1] = {k: float(roc_auc_score(y, s[k])) for k in ("score", "recon", "grad_loss")}


def main(mnist, out, candidate, epochs, *runs):
    done = set()
    if os.path.exists(out):
        done = {(r["candidate"], r["class"], r["seed"], r["epochs"]) for r in map(json.loads, open(out))}
    splits = datasets.load(f"mnist:{mnist}")
    for run in runs:
        inlier, seed = map(int, run.split(":"))
        if (candidate, inlier, seed, int(epochs)) in done:
            continue
        split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=seed)
        keras.utils.set_random_seed(seed)
        model = GradCon(input_shape=split.train.shape[1:], output_bias_from_data=candidate == "bias")
        lr = 1e-3 if not candidate.startswith("warmup") else LinearWarmup(1e-3, int(candidate[6:]))
        model.compile(optimizer=CorrectedEpsilonAdam(lr, epsilon=1e-8))
        probe = Probe(split)
        started = time.time()
        model.fit(split.train, validation_data=split.validation, epochs=int(epochs), batch_size=64,
                  callbacks=[probe], verbose=0)
        record = {"candidate": candidate, "class": inlier, "seed": seed, "epochs": int(epochs),
                  "brightest_input": float(np.max(model.preprocess(split.validation))),
                  "brightest_output": probe.brightest, "auroc": probe.auroc,
                  "best_epoch": probe.selected()[0], "seconds": round(time.time() - started, 1)}
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        keras.backend.clear_session()


if __name__ == "__main__":
    main(*sys.argv[1:])
