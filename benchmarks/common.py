"""Shared pieces of the benchmark suite: settings, the model under test, inputs, the matmul case."""

import dataclasses
import datetime
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The authors' PyTorch release, measured on a 2-core AVX-512 machine on 2026-11-29 (interleaved
#: with a straightforward TF build). Not re-measured by this suite.
RELEASE = {
    "train_step_ms_batch64": 77.0,
    "train_step_ms_batch64_other_idle_run": 101.0,
    "scoring_images_per_s": 127.0,
    "source": "the authors' PyTorch release on a 2-core AVX-512 machine, 2026-11-29; not re-measured here",
}
#: The speed targets on that machine.
TARGETS = {"scoring_images_per_s": 2500.0, "train_step_ms_batch64": 50.0}
TRAIN_BATCH = 64
MATMUL_N = 2048
EPOCH_IMAGES, VALIDATION_IMAGES, BUDGET_EPOCHS = 5400, 600, 20


@dataclasses.dataclass(frozen=True)
class Settings:
    rounds: int = 11
    train_warmup: int = 5
    train_steps_per_round: int = 12
    score_batches: tuple = (256, 512)
    score_images_per_round: int = 1024  # per raw batched case
    model_score_images: int = 2048  # per model.score call
    loop_images_per_round: int = 128
    profile_rounds: int = 11
    profile_calls: int = 5
    matmul_calls: int = 2
    epochs: int = 3
    epoch_images: int = EPOCH_IMAGES
    validation_images: int = VALIDATION_IMAGES
    litert_targets: tuple = ("f32", "f16", "dynamic_int8")
    litert_repeats: int = 2000
    litert_batch_repeats: int = 50
    memory_images: tuple = (10_000, 60_000)
    memory_parallel: bool = False  # smoke only: probes overlap the other sections


SMOKE = Settings(
    rounds=2, train_warmup=1, train_steps_per_round=2, score_images_per_round=256,
    model_score_images=256, loop_images_per_round=4, profile_rounds=1, profile_calls=1,
    matmul_calls=1, epochs=2, epoch_images=128, validation_images=64, litert_targets=("f32",),
    litert_repeats=20, litert_batch_repeats=2, memory_images=(512, 1536), memory_parallel=True,
)


def log(message):
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {message}", flush=True)


def make_model(jit_compile=False, seed=0):
    """The paper's CAE with non-zero running averages (as after training), compiled, optimizer built."""
    import keras

    import gradcon_tf

    keras.utils.set_random_seed(seed)
    model = gradcon_tf.GradCon()
    model.compile(jit_compile=jit_compile)
    rng = np.random.default_rng(seed)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    model.reference_count.assign(100)
    model.optimizer.build(model.trainable_variables)
    return model


class TraceCounter:
    """Wraps a model's step method: its Python body runs once per trace of the compiled function."""

    def __init__(self, model, method):
        self.count = 0
        original = getattr(model, method)

        def counted(data):
            self.count += 1
            return original(data)

        setattr(model, method, counted)


def images(n, seed, channels=1):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, 28, 28, channels)).astype(np.float32)


def matmul_case(calls):
    """fp32 GFLOP/s of a 2048x2048 matmul, one sample per call."""
    import tensorflow as tf

    a = tf.random.normal([MATMUL_N, MATMUL_N], seed=1)
    b = tf.random.normal([MATMUL_N, MATMUL_N], seed=2)
    fn = tf.function(lambda a, b: tf.linalg.matmul(a, b)[0, 0])
    fn(a, b).numpy()

    def case():
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            fn(a, b).numpy()
            out.append(2 * MATMUL_N**3 / (time.perf_counter() - start) / 1e9)
        return out

    return case, fn
