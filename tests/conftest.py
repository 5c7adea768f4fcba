import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.helpers import bar_images, copy_of, trained_on_bars  # noqa: E402


@pytest.fixture
def normal_images():
    return bar_images(96, "horizontal", seed=1)


@pytest.fixture
def anomalous_images():
    return bar_images(96, "vertical", seed=2)


@pytest.fixture(scope="session")
def bars_model():
    """The paper's GradCon trained once (3 epochs on horizontal bars, seed 0) for the whole
    session; each test module takes a copy (``trained``), so that none sees another's changes."""
    return trained_on_bars()


@pytest.fixture(scope="module")
def trained(bars_model):
    """The module's copy of the session's trained GradCon (:func:`tests.helpers.copy_of`)."""
    return copy_of(bars_model)
