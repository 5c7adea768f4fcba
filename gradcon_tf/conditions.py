"""The abnormal-condition experiment (CURE-TSR, Fig. 4 and Table 2): one model per seed trained
on challenge-free images, evaluated on each challenge type at each level.

The training and validation images of :func:`gradcon_tf.protocols.abnormal_condition_split` and
:func:`~gradcon_tf.protocols.cure_tsr_split` depend only on the seed, so one model serves every
(challenge, level). Challenges are synthesised on any dataset's images
(:mod:`gradcon_tf.data.challenges`) or read from the real CURE-TSR folders
(``cure_tsr:DIR`` with ``DIR/Real_Train`` and ``DIR/Real_Test``).
"""

import os

from gradcon_tf import data as datasets
from gradcon_tf import evaluation, protocols
from gradcon_tf.data import challenges, cure_tsr

SYNTHESISED = "synthesised"
REAL = "CURE-TSR"


def source(data):
    """Where the challenged images of the dataset spec ``data`` come from."""
    return REAL if data.partition(":")[0] == "cure_tsr" else SYNTHESISED


def load(data, names=None, levels=None):
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
    make = protocols.cure_tsr_split if source(data) == REAL else protocols.abnormal_condition_split
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
