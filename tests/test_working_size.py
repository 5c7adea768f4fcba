"""Networks at the working resolution: the staged autoencoder above 32 px, its fast scoring path
against a per-image tape and the generic path, resizing to a chosen working size."""

import numpy as np
import pytest

import gradcon_tf
from gradcon_tf import gradients, networks
from tests.test_scoring import assert_scores_close, batch_of_one_scores


def _floor_halvings(side):
    sides = [side]
    while sides[-1] > 4:
        sides.append(sides[-1] // 2)
    return sides


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (20, 31, 1)])
def test_up_to_32_px_keeps_the_papers_network(shape):
    model = gradcon_tf.GradCon(input_shape=shape)
    assert model.working_size == (28, 28)
    assert model.encoder.output_shape[1:] == (3, 3, 64)
    if shape[-1] == 1:
        assert model.encoder.count_params() + model.decoder.count_params() == 230_721  # Table 6


def test_stages_halve_each_side_until_the_smaller_is_at_most_4():
    assert networks.stage_sizes(128) == [(s, s) for s in (128, 64, 32, 16, 8, 4)]
    heights, widths = zip(*networks.stage_sizes((37, 300)))
    assert list(heights) == _floor_halvings(37)  # 37 18 9 4
    assert list(widths) == [300 // 2**i for i in range(len(heights))]
    assert networks.stage_filters(6) == (32, 32, 64, 64, 128, 128)


@pytest.mark.parametrize("size", [(64, 64), (33, 47), (37, 300), (256, 256)])
def test_staged_decoder_gives_back_the_encoders_size(size):
    encoder, decoder = networks.build_encoder(1, size), networks.build_decoder(1, size)
    stages = len(networks.stage_sizes(size)) - 1
    assert encoder.output_shape[1:] == networks.latent_shape(size)
    assert decoder.output_shape[1:] == (*size, 1)
    assert len(gradients.constrained_kernels(decoder)) == stages
    assert gradients.plan_decoder(decoder)  # a chain the fast path knows


@pytest.fixture(scope="module")
def staged_model():
    """A GradCon model at 40x48 (3 stages) trained for two epochs on random images."""
    rng = np.random.default_rng(0)
    model = gradcon_tf.GradCon(input_shape=(40, 48, 1), initialization="release")
    model.compile()
    images = rng.integers(0, 256, size=(32, 40, 48, 1), dtype=np.uint8)
    model.fit(images, epochs=2, batch_size=8, verbose=0)
    return model, images


def test_staged_fast_path_equals_a_per_image_tape(staged_model):
    model, images = staged_model
    assert model.working_size == (40, 48) and gradients.plan_decoder(model.decoder)
    assert_scores_close(model.score(images[:5]), batch_of_one_scores(model, images[:5]))


def test_staged_fast_path_equals_the_generic_path(staged_model):
    model, images = staged_model
    network_input = model.preprocess(images[:6])
    latents = model.encoder(network_input)
    references = [r.value for r in model.reference_gradients]
    fast = gradients.decoder_scores(
        gradients.plan_decoder(model.decoder), latents, network_input, model.reference_gradients,
        maps=True,
    )
    generic = gradients.generic_decoder_scores(
        model.decoder, latents, network_input, references, maps=True
    )
    for ours, expected in zip(fast, generic):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), atol=1e-5)


def test_staged_maps_are_at_the_working_resolution(staged_model):
    model, images = staged_model
    outputs = model.score(images[:3], maps=True)
    assert outputs["score_map"].shape == (3, 40, 48)
    np.testing.assert_allclose(outputs["recon_map"].mean(axis=(1, 2)), outputs["recon"], rtol=1e-5)


def test_working_size_resizes_inside_the_model_and_survives_the_config():
    rng = np.random.default_rng(1)
    model = gradcon_tf.GradCon(input_shape=(96, 80, 1), working_size=(48, 40))
    images = rng.integers(0, 256, size=(4, 96, 80, 1), dtype=np.uint8)
    assert model(images).shape == (4, 48, 40, 1)
    assert model.score(images, maps=True)["score_map"].shape == (4, 96, 80)
    restored = gradcon_tf.GradCon.from_config(model.get_config())
    assert restored.working_size == (48, 40)
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored.score(images)["score"], model.score(images)["score"])


def test_configs_without_a_working_size_keep_their_encoders():
    """Models saved before the staged networks resized 64 px images to the paper's 28x28."""
    config = gradcon_tf.GradCon(input_shape=(64, 64, 1), working_size=28).get_config()
    del config["working_size"]
    assert gradcon_tf.GradCon.from_config(config).working_size == (28, 28)
    assert gradcon_tf.GradCon(input_shape=(64, 64, 1)).working_size == (64, 64)


def test_latent_filters_narrow_the_bottleneck_only():
    wide, narrow = networks.stage_filters(5), networks.stage_filters(5, latent_filters=4)
    assert narrow == wide[:-1] + (4,)
    encoder = networks.build_encoder(1, 64, latent_filters=4)
    decoder = networks.build_decoder(1, 64, latent_filters=4)
    assert encoder.output_shape[1:] == (4, 4, 4) and decoder.output_shape[1:] == (64, 64, 1)
    assert networks.build_encoder(1, 28, latent_filters=4).output_shape[1:] == (3, 3, 4)
