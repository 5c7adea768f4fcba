"""The exported GradCon LiteRT model behind a small numpy interface, with call timings."""

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .portable.native_stderr import stderr_silenced
from .portable.signatures import (
    FLOAT_SIGNATURE, INPUT_NAME, MAP_NAMES, MAP_SCALES, MAPS_FLOAT_SIGNATURE, MAPS_UINT8_SIGNATURE,
    UINT8_SIGNATURE,
)


class Scorer:
    """Scores uint8 NHWC batches with a ``.tflite`` written by ``gradcon export``.

    Uses the model's uint8 signature when it has one (f32, f16, dynamic int8), else the float
    signature (full int8) with images scaled to [0, 1]; ``maps``: the signatures that also
    return the anomaly maps (``recon_map``, ``grad_map``, ``score_map``). ``timings`` collects
    (seconds, images) of every call. Raises ValueError, naming ``model_path``, for a file that is
    not such a model.
    """

    def __init__(self, model_path, threads=1, maps=False):
        try:
            self.interpreter = Interpreter(model_path=model_path, num_threads=int(threads))
        except ValueError as error:
            raise ValueError(
                f"{model_path}: not a LiteRT model ({error}); expected a .tflite from `gradcon export`"
            ) from None
        signatures = self.interpreter.get_signature_list()
        uint8, floats = (MAPS_UINT8_SIGNATURE, MAPS_FLOAT_SIGNATURE) if maps else (
            UINT8_SIGNATURE, FLOAT_SIGNATURE)
        if uint8 in signatures:
            self.signature = uint8
        elif floats in signatures:
            self.signature = floats
        else:
            raise ValueError(
                f"{model_path}: no '{uint8}' or '{floats}' signature (found {sorted(signatures)}); "
                "export it with `gradcon export`"
                + (" (models exported before the anomaly maps have none)." if maps else ".")
            )
        self.uint8_input = self.signature == uint8
        self.runner = self.interpreter.get_signature_runner(self.signature)
        details = self.runner.get_input_details()[INPUT_NAME]
        self.image_shape = tuple(int(d) for d in details["shape_signature"][1:])
        self.timings = []
        self._called = False

    def warm_up(self, batch_size):
        """One untimed call at ``batch_size`` (the first call at a new shape allocates and
        packs); returns its outputs."""
        dtype = np.uint8 if self.uint8_input else np.float32
        return self._call(np.zeros((batch_size, *self.image_shape), dtype))

    def score(self, images):
        """``{"score", "recon", "grad_loss", "layer_cosines", "is_anomaly", "threshold", "p_value"}``
        (``p_value`` only in models exported with it), and the maps with ``maps`` (and
        ``map_scales`` in models exported with them)."""
        images = np.asarray(images, dtype=np.uint8)
        data = images if self.uint8_input else images.astype(np.float32) / 255.0
        start = time.perf_counter()
        outputs = self._call(data)
        self.timings.append((time.perf_counter() - start, len(images)))
        return outputs

    def _call(self, data):
        """The signature runner on ``data``; the first call (where LiteRT creates its XNNPACK
        delegate and prints "INFO: Created ...") with the runtime's stderr silenced."""
        if self._called:
            return self.runner(**{INPUT_NAME: data})
        with stderr_silenced():
            outputs = self.runner(**{INPUT_NAME: data})
        self._called = True
        return outputs


def map_scales(outputs):
    """{map name: scale} from the calibration images, as exported with the model; None when the
    model has none (exported before map scales, or calibrated without them)."""
    if MAP_SCALES not in outputs:
        return None
    scales = np.asarray(outputs[MAP_SCALES])[0]
    return None if np.isnan(scales).any() else dict(zip(MAP_NAMES, map(float, scales)))


def latency_summary(timings):
    """p50/p99 per call and per image (ms) and images/s over all calls."""
    if not timings:
        return {"calls": 0, "images": 0}
    seconds = np.array([t for t, _ in timings])
    counts = np.array([n for _, n in timings])
    per_image = seconds / counts
    return {
        "calls": len(timings),
        "images": int(counts.sum()),
        "call_ms_p50": 1e3 * float(np.percentile(seconds, 50)),
        "call_ms_p99": 1e3 * float(np.percentile(seconds, 99)),
        "image_ms_p50": 1e3 * float(np.percentile(per_image, 50)),
        "image_ms_p99": 1e3 * float(np.percentile(per_image, 99)),
        "images_per_s": float(counts.sum() / seconds.sum()),
    }
