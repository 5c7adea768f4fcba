"""Model selection by validation loss (``KeepBestWeights``), plain and as the release writes
checkpoints, against a transcription of the release's training loop."""

import json
import os

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcon_tf import cli
from gradcon_tf.callbacks import KeepBestWeights


def release_choice(val_losses, write_freq):
    """The epoch whose checkpoint the release's train.py leaves as model_best (1-based)."""
    best_loss, kept = 1e20, None
    for epoch, loss in enumerate(val_losses):
        is_best = loss < best_loss
        best_loss = min(loss, best_loss)
        if (epoch % write_freq == 0 or epoch == len(val_losses) - 1) and is_best:
            kept = epoch + 1
    return kept


def select(val_losses, every):
    """Run the callback over ``val_losses`` with a model whose weight is the epoch number."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    callback = KeepBestWeights(every=every)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, loss in enumerate(val_losses):
        model.set_weights([np.full((1, 1), epoch + 1.0)])
        callback.on_epoch_end(epoch, {"val_loss": loss})
    callback.on_train_end()
    return callback.best_epoch, int(model.get_weights()[0][0, 0])


def test_the_release_keeps_an_earlier_written_epoch_when_the_lowest_falls_between_writes():
    losses = [5.0, 4.0, 3.0, 2.5, 2.0, 1.9, 2.1, 1.8, 1.85, 1.9, 1.95]
    assert select(losses, every=1) == (8, 8)  # the lowest loss
    assert select(losses, every=5) == (6, 6)  # epoch 8 is not written, epoch 11 is not lower
    assert select(losses[:8], every=5) == (8, 8)  # the last epoch is always written


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=25),
    st.integers(1, 7),
)
def test_selection_matches_the_release_loop(val_losses, every):
    epoch, weight = select(val_losses, every)
    assert epoch == weight == release_choice(val_losses, every)
    if every == 1:
        assert epoch == int(np.argmin(val_losses)) + 1


@pytest.mark.slow  # kept out of the default run for its time
def test_reproduce_selects_and_records_as_the_release(tmp_path):
    out = str(tmp_path / "every3")
    argv = ["reproduce", "--data", "digits", "--classes", "3", "--seeds", "1", "--epochs", "5",
            "--progress", "0", "--milestones", "2,4", "--checkpoint-every", "3", "--out", out]
    assert cli.main(argv) == 0
    with open(os.path.join(out, "runs", "class3-seed0.json")) as handle:
        run = json.load(handle)
    with open(os.path.join(out, "summary.json")) as handle:
        summary = json.load(handle)
    assert run["settings"]["checkpoint_every"] == 3
    assert run["best_epoch"] == release_choice(run["val_loss"], 3)
    for budget in (2, 4):  # a shorter budget ends (and writes) at its own last epoch
        assert run["milestones"][str(budget)]["best_epoch"] == release_choice(
            run["val_loss"][:budget], 3
        )
    assert summary["command"].endswith("--milestones 2,4 --checkpoint-every 3")
    assert summary["hyperparameters"]["checkpoint_every"] == 3

    from gradcon_tf.reproduction import store

    plain = store.Settings(**{**run["settings"], "checkpoint_every": 1})
    assert store.load_finished_run(out, {"inlier_class": 3, "seed": 0}, plain) is None  # never mixed with the plain rule
