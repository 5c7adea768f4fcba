"""A small client for TF Serving's REST predict API (row format), standard library + numpy only.

    POST {url}/v1/models/{model}[/versions/{v}]:predict
    {"signature_name": "serving_default", "instances": [image, image, ...]}
    -> {"predictions": [{"score": ..., "recon": ..., ...}, ...]}

Usage: ``gradcon query images.npy --url http://localhost:8501 --model gradcon``
(``images.npy``: (N, H, W, C) uint8, sent to the ``score_uint8`` signature, or float in [0, 1]).
"""

import json
import urllib.error
import urllib.request

import numpy as np

from gradcon_tf.portable.signatures import FLOAT_SIGNATURE, UINT8_SIGNATURE


def request_body(images):
    """The JSON body for ``images`` (NHWC) and the signature matching their dtype."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be NHWC (4-D), got shape {images.shape}.")
    signature = UINT8_SIGNATURE if images.dtype == np.uint8 else FLOAT_SIGNATURE
    values = images if images.dtype == np.uint8 else images.astype(np.float32)
    return {"signature_name": signature, "instances": values.tolist()}


def parse_predictions(body):
    """``{"predictions": [row, ...]}`` -> ``{output name: numpy array with one row per image}``."""
    if "error" in body:
        raise ValueError(f"TF Serving error: {body['error']}")
    rows = body["predictions"]
    if not rows:
        return {}
    return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}


def predict(images, url="http://localhost:8501", model="gradcon", version=None, timeout=60.0):
    """Score ``images`` with a model served by TF Serving; returns a dict of numpy arrays."""
    path = f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    request = urllib.request.Request(
        url.rstrip("/") + path + ":predict",
        data=json.dumps(request_body(images)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return parse_predictions(json.load(response))
    except urllib.error.HTTPError as error:
        raise ConnectionError(f"TF Serving answered {error.code}: {error.read().decode()}") from None
    except urllib.error.URLError as error:
        raise ConnectionError(f"cannot reach TF Serving at {url}: {error.reason}") from None
