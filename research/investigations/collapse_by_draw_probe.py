"""Does the first epoch of the release-initialised GradCon leave a blank reconstruction? One line per
(split seed, init seed) argument: MNIST inlier class argv[1], 1 epoch, max of the validation
reconstructions (blank: < 0.5). Output: collapse_probes_output.txt."""
import sys, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1); tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from gradcon_tf import data as datasets, protocols
from gradcon_tf.model import GradCon
splits = datasets.load("mnist:../shared/datasets/mnist")
c = int(sys.argv[1])
for arg in sys.argv[2:]:
    split_seed, init_seed = map(int, arg.split(","))
    split = protocols.one_class_split(splits["train"], splits["test"], c, seed=split_seed, validation_fraction=0.1)
    keras.utils.set_random_seed(init_seed)
    model = GradCon(output_bias_from_data=False); model.compile()
    k0 = model.decoder.layers[-3].kernel.numpy().ravel()[:3] if hasattr(model.decoder.layers[-3], "kernel") else None
    w = [v.numpy().ravel()[0] for v in model.trainable_variables[:2]]
    model.fit(split.train, epochs=1, batch_size=64, verbose=0)
    r = model(split.validation).numpy()
    print(f"class {c} split_seed {split_seed} init_seed {init_seed} first weights {w} max_out {r.max():.3f}", flush=True)
    keras.backend.clear_session()
