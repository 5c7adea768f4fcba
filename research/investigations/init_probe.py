"""Probe: the release's initialisation vs the output bias from data, both with Adam epsilon 1e-8
(the release's), 20 epochs of GradCon on real MNIST; one JSON line per (variant, class, seed).

    python research/investigations/init_probe.py release 0,3,5 0,1   # GradCon(output_bias_from_data=False)
    python research/investigations/init_probe.py bias 0,3,5 0,1      # the default

Output: research/investigations/init_probe-{variant}.jsonl (the run of 2026-11-29 is committed).
Each process uses one thread, so that the two variants can run side by side on two cores.
"""
import json, os, sys, time
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from gradcon_tf import data as datasets, protocols, experiment
from gradcon_tf.model import GradCon

variant = sys.argv[1]  # release | bias
classes = [int(c) for c in sys.argv[2].split(",")]
seeds = [int(s) for s in sys.argv[3].split(",")]
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 20
splits = datasets.load(os.environ.get("MNIST", "mnist:../shared/datasets/mnist"))
out = open(os.path.join(os.path.dirname(__file__), f"init_probe-{variant}.jsonl"), "a")
for s in seeds:
    for c in classes:
        split = protocols.one_class_split(splits["train"], splits["test"], c, seed=s, validation_fraction=0.1)
        keras.utils.set_random_seed(s)
        model = GradCon(input_shape=split.train.shape[1:], output_bias_from_data=(variant == "bias"))
        model.compile()
        best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)
        t = time.time()
        h = model.fit(split.train, validation_data=split.validation, epochs=epochs, batch_size=64, callbacks=[best], verbose=0)
        r = experiment.evaluate_one_class(model, split)
        rec = dict(variant=variant, cls=c, seed=s, epochs=epochs, seconds=round(time.time()-t), val_loss=[round(v, 5) for v in h.history["val_loss"]], recon_loss=[round(v, 5) for v in h.history["recon_loss"]], **{k: r[k] for k in ("score", "recon", "grad_loss", "layers")})
        out.write(json.dumps(rec) + "\n"); out.flush()
        print(variant, c, s, round(r["score"], 3), round(r["recon"], 3), round(r["grad_loss"], 3), flush=True)
        keras.backend.clear_session()
