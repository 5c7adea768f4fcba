"""The training recipe: declared once, it reaches every command's options, the run record and back."""

import dataclasses

import pytest

from gradcon_tf import cli, recipe
from gradcon_tf.recipe import Recipe
from gradcon_tf.reproduction import runner, store

#: A value other than the default, as typed on the command line and as the recipe holds it.
OTHER_VALUES = {
    "batch_size": ("32", 32), "fpr": ("0.1", 0.1), "method": ("cae", "cae"),
    "initialization": ("data", "data"),
    "checkpoint_every": ("5", 5), "loss_weights": ("data", "data"),
    "image_score": ("local", "local"), "remove_illumination": (None, True),
    "learning_rate": ("3e-4", 3e-4), "restart_averages": ("cleared", "cleared"),
}
REQUIRED = {
    "train": ["--normal", "good", "--out", "m.keras"],
    "evaluate": [],
    "reproduce": ["--data", "digits", "--epochs", "1", "--out", "r"],
}


def test_every_option_with_a_flag_reaches_the_recipe_of_each_command_that_takes_it():
    parser = cli.build_parser()
    flagged = [f for f in dataclasses.fields(Recipe) if f.metadata.get("flag")]
    assert {f.name for f in flagged} == set(OTHER_VALUES)
    for command, required in REQUIRED.items():
        for field in recipe.command_fields(command):
            typed, value = OTHER_VALUES[field.name]
            flag = field.metadata["flag"]
            args = parser.parse_args([command, *required, flag, *([typed] if typed else [])])
            assert getattr(recipe.from_args(args, command), field.name) == value, (command, flag)
        untouched = recipe.from_args(parser.parse_args([command, *required]), command)
        assert untouched == Recipe(), command


def test_the_recipe_checks_its_values():
    for bad in ({"batch_size": 0}, {"fpr": 1.0}, {"initialization": "zeros"}, {"epochs": 2.5},
                {"learning_rate": float("nan")}, {"image_score": "max"},
                {"restart_averages": "zeros"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Recipe(**bad)
    with pytest.raises(TypeError):
        Recipe().replace(not_an_option=1)
    with pytest.raises(ValueError, match="unknown method"):  # experiment.METHODS checks it
        runner.recipe_settings("digits", 1, method="ae")
    assert Recipe().replace(epochs=None, batch_size=16) == Recipe(batch_size=16)


def test_the_settings_record_the_recipe_and_give_it_back():
    chosen = Recipe(epochs=7, batch_size=32, method="cae", initialization="release",
                    checkpoint_every=5, loss_weights="data",
                    image_score="local", remove_illumination=True, learning_rate=3e-4,
                    restart_averages="cleared")
    settings = runner.recipe_settings("digits", 7, **{
        name: getattr(chosen, name) for name in runner.RECIPE_OPTIONS if name != "fpr"})
    assert settings.recipe() == chosen
    assert (settings.alpha, settings.beta) == (0.0, 0.12)  # the CAE: no constraint; its score keeps the gradient term
    # The record's keys and their order are the results folders' format: unchanged.
    assert list(settings.as_dict()) == [
        "data", "epochs", "batch_size", "alpha", "beta", "validation_fraction", "method",
        "optimizer", "output_bias_from_data", "redraw_collapsed", "checkpoint_every",
        "bias_from_data_on_collapse", "loss_average", "loss_weights", "image_score",
        "remove_illumination", "learning_rate", "restart_averages"]
    assert not runner.recipe_settings("digits", 3, initialization="release").redraw_collapsed
    assert store.Settings.from_recipe("x", Recipe(), 0.03, 0.12).initialization == "guarded"
