"""Collapse: the initial weights or the first-epoch data order? Class 4, split seed 0; each argument
is (seed that draws the weights, seed set before fit, which orders the batches). Output:
collapse_probes_output.txt."""
import sys, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1); tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from gradcon_tf import data as datasets, protocols
from gradcon_tf.model import GradCon
splits = datasets.load("mnist:../shared/datasets/mnist")
split = protocols.one_class_split(splits["train"], splits["test"], 4, seed=0, validation_fraction=0.1)
for arg in sys.argv[1:]:
    init_seed, order_seed = map(int, arg.split(","))
    keras.utils.set_random_seed(init_seed)
    model = GradCon(output_bias_from_data=False); model.compile()
    keras.utils.set_random_seed(order_seed)
    model.fit(split.train, epochs=1, batch_size=64, verbose=0)
    print(f"init {init_seed} order {order_seed} max_out {model(split.validation).numpy().max():.3f}", flush=True)
    keras.backend.clear_session()
