"""A baseline beside GradCon on features: nearest neighbours over patch features (PatchCore-style).

No training: a memory bank of feature vectors (positions of the training images' feature maps,
a seeded random subset of at most ``bank_size``); a position's anomaly is its Euclidean distance
to the nearest vector of the bank, the image's score the largest over its map (PatchCore, Roth et
al. 2022, without the coreset: a random subset, as the held-out benchmark's baseline used).
The features are whatever ``extract`` gives: for the comparison in docs/features.md, the very
standardised map a ``GradCon(backbone=...)`` model's autoencoder reconstructs.
"""

import numpy as np
import tensorflow as tf

#: Feature vectors kept in the memory bank.
DEFAULT_BANK_SIZE = 20_000


class PatchNearestNeighbour:
    """``fit(features)`` then ``score_maps(features)``; features are (N, h, w, C) arrays."""

    def __init__(self, bank_size=DEFAULT_BANK_SIZE, seed=0):
        self.bank_size, self.seed = int(bank_size), seed
        self.bank = None

    def fit(self, features):
        vectors = np.asarray(features, np.float32).reshape(-1, features.shape[-1])
        if len(vectors) > self.bank_size:
            chosen = np.random.default_rng(self.seed).choice(len(vectors), self.bank_size,
                                                             replace=False)
            vectors = vectors[chosen]
        self.bank = tf.constant(vectors)
        self._bank_norms = tf.reduce_sum(tf.square(self.bank), axis=1)
        return self

    def score_maps(self, features, batch_size=16):
        """(N, h, w) distances of each position to its nearest bank vector."""
        if self.bank is None:
            raise ValueError("fit() the memory bank first")
        maps = [self._distances(tf.constant(features[i : i + batch_size], tf.float32)).numpy()
                for i in range(0, len(features), batch_size)]
        return np.concatenate(maps)

    @tf.function(reduce_retracing=True)
    def _distances(self, batch):
        shape = tf.shape(batch)
        vectors = tf.reshape(batch, [-1, shape[-1]])
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, minimised over the bank.
        products = tf.matmul(vectors, self.bank, transpose_b=True)
        squared = (tf.reduce_sum(tf.square(vectors), axis=1, keepdims=True)
                   - 2.0 * products + self._bank_norms[None, :])
        nearest = tf.sqrt(tf.maximum(tf.reduce_min(squared, axis=1), 0.0))
        return tf.reshape(nearest, shape[:3])

    def image_scores(self, features):
        """Per image, the largest distance over its map."""
        return self.score_maps(features).max(axis=(1, 2))
