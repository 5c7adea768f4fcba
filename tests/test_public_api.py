"""The public API: what `gradcon_tf.__all__` names resolves, and importing the package is cheap."""

import subprocess
import sys

import gradcon_tf


def test_every_public_name_resolves():
    for name in gradcon_tf.__all__:
        assert getattr(gradcon_tf, name) is not None, name
    assert gradcon_tf.load_dataset is gradcon_tf.data.load
    assert set(gradcon_tf.__all__) <= set(dir(gradcon_tf))


def test_import_does_not_load_tensorflow_until_a_name_is_used():
    code = (
        "import sys, gradcon_tf\n"
        "assert 'tensorflow' not in sys.modules\n"
        "gradcon_tf.GradCon\n"
        "assert 'tensorflow' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
