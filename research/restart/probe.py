"""Issue 35 probe: why does a run started from the data's mean train a weaker gradient score?

On MNIST's one-class protocol (the paper's split; the seeds where the guard restarts), train
the same draw three ways and compare the gradient-alone AUROC:

* ``release``: the release's start (the decoder may stay dead, as the guard would see);
* ``data``: the output bias set from the data's mean from the start, which is what the guarded
  restart trains (same draw, same optimizer state; only the shuffling's RNG state differs);
* ``data-reset<k>``: as ``data``, with the running averages of the gradients (Eq. 6's
  references) cleared after epoch k, so that the first epochs' directions, taken while the
  reconstruction is still the mean image, leave the average;
* ``release-reset<k>``: as ``release``, with the averages cleared after epoch k: whether the
  release start's score owes to its first epochs' (large) gradients in the average;
* ``release-warmup<k>``: the release start with Adam's learning rate raised linearly from 0
  over the first k epochs: whether a gentler first epoch spares the draws that collapse;
* ``guarded-keep``: the guarded start, the restart (if any) beginning with the averages the
  abandoned run reached instead of zeros;
* ``release-prime``: Eq. 6's averages first set to the mean reconstruction gradient at the drawn
  weights over one epoch of batches (no update, counted as that many steps), then the mean-image
  start: whether the release start's first directions, given to the restart, recover its score.

    python research/restart/probe.py --data mnist:../shared/datasets/mnist --classes 5 \
        --seeds 1 --epochs 20 --variants release data data-reset1
"""

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class ClearReferences:
    """A Keras callback that clears the model's running gradient averages after epoch ``k``."""

    def __new__(cls, after_epoch):
        import keras

        class Clear(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == after_epoch:
                    for reference in self.model.reference_gradients:
                        reference.assign(reference * 0.0)
                    self.model.reference_count.assign(0.0 * self.model.reference_count)

        return Clear()


class WarmUp:
    """A Keras callback that raises Adam's learning rate linearly from 0 over the first ``k``
    epochs (per step), then holds it."""

    def __new__(cls, epochs):
        import keras

        class Warm(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.rate, self.step = float(self.model.optimizer.learning_rate), 0

            def on_train_batch_begin(self, batch, logs=None):
                self.step += 1
                share = min(1.0, self.step / (self.params["steps"] * epochs))
                self.model.optimizer.learning_rate.assign(self.rate * share)

        return Warm()


class PrimeFromDraw:
    """A Keras callback for a ``release`` start: at the start of training, Eq. 6's running
    averages are set to the mean reconstruction-loss gradient of the decoder kernels over one
    epoch of batches of ``images`` *at the drawn weights* (no update), counted as that many
    steps, and only then is the output bias set from the data (the mean-image start)."""

    def __new__(cls, images, batch_size=64):
        import keras
        import tensorflow as tf

        from gradcon_tf import gradients

        class Prime(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                model = self.model
                kernels = [k.value for k in model.constrained_kernels]
                sums, steps = [tf.zeros_like(k) for k in kernels], 0
                for start in range(0, len(images), batch_size):
                    batch = model.preprocess(tf.convert_to_tensor(images[start:start + batch_size]))
                    with tf.GradientTape(watch_accessed_variables=False) as tape:
                        tape.watch(kernels)
                        latents, _ = model.encode(batch)
                        loss = tf.reduce_mean(gradients.per_sample_reconstruction_error(
                            batch, model.decoder(latents), model.reconstruction_loss))
                    sums = [s + g for s, g in zip(sums, tape.gradient(loss, kernels))]
                    steps += 1
                for reference, total in zip(model.reference_gradients, sums):
                    reference.assign(total / steps)
                model.reference_count.assign(steps)
                model.initialize_output_bias(images)

        return Prime()


class KeepAbandonedAverages:
    """A Keras callback for a ``guarded`` start: when the guard restarts a dead start, the
    restarted run begins with the running averages the abandoned run had reached (its first
    epochs' directions) instead of zeros."""

    def __new__(cls):
        import keras

        class Keep(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if getattr(self, "kept", None) is not None:  # the restart's second fit
                    references, count = self.kept
                    for reference, value in zip(self.model.reference_gradients, references):
                        reference.assign(value)
                    self.model.reference_count.assign(count)
                    self.kept = None

            def on_train_end(self, logs=None):
                if not getattr(self, "done", False):  # the first fit: keep what it averaged
                    self.done = True
                    self.kept = ([r.numpy() for r in self.model.reference_gradients],
                                 self.model.reference_count.numpy())

        return Keep()


def run(split, epochs, seed, variant):
    """Train ``variant``: its start (``release`` or ``data``), then modifiers ``reset<k>``
    (clear Eq. 6's averages after epoch k) and ``warmup<k>`` (learning-rate warm-up over k
    epochs), e.g. ``data-reset1`` or ``release-warmup1``."""
    from gradcon_tf import collapse, experiment

    start, *modifiers = variant.split("-")
    callbacks = []
    for modifier in modifiers:
        if modifier.startswith("reset"):
            callbacks.append(ClearReferences(int(modifier[len("reset"):])))
        elif modifier.startswith("warmup"):
            callbacks.append(WarmUp(int(modifier[len("warmup"):])))
        elif modifier == "prime":
            callbacks.append(PrimeFromDraw(split.train))
        elif modifier == "keep":
            callbacks.append(KeepAbandonedAverages())
        else:
            raise ValueError(f"unknown variant {variant!r}")
    model = experiment.train_one_class(split, epochs, seed=seed, initialization=start,
                                       callbacks=callbacks, verbose=0)
    result = experiment.evaluate_one_class(model, split)
    return {"gradcon": result["score"], "recon": result["recon"], "grad": result["grad_loss"],
            "layers": result["layers"], "selected_epoch": model.selected_epoch,
            "collapsed_starts": model.collapsed_starts,
            "dead": bool(collapse.is_dead(model, split.validation))}


def print_table(path):
    """Gradient-alone AUROC (and GradCon's) per (class, seed, epochs), one column per variant."""
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    runs = list(dict.fromkeys((r["class"], r["seed"], r["epochs"]) for r in records))
    print("| class | seed | epochs | " + " | ".join(f"{v}: grad (GradCon)" for v in variants) + " |")
    print("|---" * (3 + len(variants)) + "|")
    for run in runs:
        cells = []
        for variant in variants:
            found = [r for r in records if (r["class"], r["seed"], r["epochs"]) == run
                     and r["variant"] == variant]
            dead = " dead" if found and found[0].get("dead") else ""  # recorded since release-warmup
            cells.append(f"{found[0]['grad']:.3f} ({found[0]['gradcon']:.3f}){dead}" if found else "")
        print(f"| {run[0]} | {run[1]} | {run[2]} | " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--classes", nargs="+", type=int)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=["release", "data", "data-reset1"])
    parser.add_argument("--out", default=os.path.join(HERE, "probe.jsonl"))
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true", help="print the table of --out")
    args = parser.parse_args(argv)
    if args.table:
        print_table(args.out)
        return 0
    if not args.data or not args.classes:
        parser.error("--data and --classes are needed to run")
    import keras

    import gradcon_tf
    from gradcon_tf.reproduction.provenance import code_version

    done = set()
    if os.path.exists(args.out):
        with open(args.out) as lines:
            done = {(r["class"], r["seed"], r["epochs"], r["variant"]) for r in map(json.loads, lines)}
    data = gradcon_tf.load_dataset(args.data)
    command = "python research/restart/probe.py " + " ".join(argv or sys.argv[1:])
    for inlier in args.classes:
        for seed in args.seeds:
            split = gradcon_tf.one_class_split(data["train"], data["test"], inlier, seed=seed)
            for variant in args.variants:
                if (inlier, seed, args.epochs, variant) in done:
                    continue
                started = time.perf_counter()
                result = run(split, args.epochs, seed, variant)
                record = {"class": inlier, "seed": seed, "epochs": args.epochs, "variant": variant,
                          **result, "seconds": round(time.perf_counter() - started, 1),
                          "commit": code_version(), "command": command,
                          "cpu": platform.processor() or platform.machine(), "note": args.note}
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                print(inlier, seed, variant, {k: round(result[k], 3) for k in ("gradcon", "recon", "grad")},
                      result["collapsed_starts"], f"{record['seconds']} s", flush=True)
                keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
