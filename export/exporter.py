"""Export a trained GradCon model: the SavedModel for TF Serving and the LiteRT variants."""

import json
import os

import numpy as np

import gradcon_tf
from gradcon_tf import _files as files
from gradcon_tf import gradients, preprocessing
from . import litert, saved_model
from gradcon_tf.scoring_graph import (
    FLOAT_SIGNATURE, MAP_NAMES, MAP_SCALES, MAPS_FLOAT_SIGNATURE, MAPS_UINT8_SIGNATURE, OUTPUT_NAMES,
    UINT8_SIGNATURE, ScoringModule,
)

MANIFEST = "export.json"


def check_litert_exportable(model):
    """Raise ValueError unless the decoder has the builtin-only fast path."""
    if not gradients.plan_decoder(model.decoder):
        raise ValueError(
            "LiteRT export needs a decoder that gradcon_tf.gradients.plan_decoder understands (a "
            "chain of 'valid' Conv2DTranspose, Cropping2D, ZeroPadding2D and relu/sigmoid "
            "layers); this one is not, and its generic GradientTape path needs Flex ops. Export "
            "the SavedModel only (`--targets none`, or targets=())."
        )


def export_model(
    model,
    out_dir,
    version=1,
    threshold=None,
    targets=tuple(litert.TARGETS),
    representative_images=None,
    name="gradcon",
):
    """Write ``out_dir/saved_model/<version>/`` and ``out_dir/<name>_<target>.tflite``.

    Args:
      model: a ``GradCon`` or the path of a ``.keras`` file holding one.
      threshold: decision threshold; default the model's (NaN -> ``is_anomaly`` all False).
      targets: LiteRT variants among ``litert.TARGETS`` (``f32``, ``f16``, ``dynamic_int8``).
      representative_images: normal images; when given, also writes ``<name>_full_int8.tflite``.

    Returns the manifest: paths (joined with ``out_dir``), sizes and op lists. It is also
    written to ``out_dir/export.json`` with the paths relative to ``out_dir``, so that the
    folder can be moved (:func:`read_manifest` joins them again). Everything is written to a
    temporary folder first and moved into ``out_dir`` at the end: an interrupted export leaves
    ``out_dir`` as it was.
    """
    unknown = set(targets) - set(litert.TARGETS)
    if unknown:
        raise ValueError(f"unknown LiteRT targets {sorted(unknown)}; choose from {list(litert.TARGETS)}.")
    if isinstance(model, (str, os.PathLike)):
        model = gradcon_tf.load_model(model)
    wants_litert = bool(targets) or representative_images is not None
    if wants_litert:
        check_litert_exportable(model)  # fail before writing anything
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not a folder (the export folder)")
    saved_model.version_folder(os.path.join(out_dir, "saved_model"), version)  # before any work
    module = ScoringModule(model, threshold=threshold)
    with files.staged_folder(out_dir) as staging:  # nothing half-written on an interrupt
        _write_export(model, module, staging, version, targets, representative_images, name)
    return read_manifest(out_dir)


def _write_export(model, module, out_dir, version, targets, representative_images, name):
    """Write the SavedModel, the LiteRT variants and export.json under ``out_dir``."""
    saved_model_dir = saved_model.save(module, os.path.join(out_dir, "saved_model"), version)
    manifest = {
        "image_shape": list(model.image_shape),
        "threshold": None if np.isnan(module.threshold.numpy()) else float(module.threshold.numpy()),
        "signatures": {
            FLOAT_SIGNATURE: "float32 in [0, 1]",
            UINT8_SIGNATURE: "uint8 0..255",
            MAPS_FLOAT_SIGNATURE: "float32 in [0, 1], with the anomaly maps",
            MAPS_UINT8_SIGNATURE: "uint8 0..255, with the anomaly maps",
        },
        "outputs": list(OUTPUT_NAMES),
        "map_outputs": [*MAP_NAMES, MAP_SCALES],
        # The calibration images' map scales (the overlays' shared scale), like the threshold.
        "map_scales": model.map_scales,
        "saved_model": saved_model_dir,
        "litert": {},
    }
    conversions = {t: litert.TARGETS[t] for t in targets}
    if representative_images is not None:
        images = preprocessing.check_images(representative_images, model.image_shape, "representative_images")
        images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
        conversions["full_int8"] = lambda path: litert.to_full_int8(path, images)
    for tag, convert in conversions.items():
        content = convert(saved_model_dir)
        path = os.path.join(out_dir, f"{name}_{tag}.tflite")
        files.write_bytes(path, content)  # temporary name, then rename
        manifest["litert"][tag] = {
            "path": path,
            "bytes": len(content),
            "ops": litert.operator_names(content),
        }
    files.write_text(os.path.join(out_dir, MANIFEST), json.dumps(_relative(manifest, out_dir), indent=2))


def _relative(manifest, out_dir):
    """``manifest`` with its paths relative to ``out_dir``."""
    def relative(path):
        return os.path.relpath(path, out_dir)

    return {
        **manifest,
        "saved_model": relative(manifest["saved_model"]),
        "litert": {t: {**i, "path": relative(i["path"])} for t, i in manifest["litert"].items()},
    }


def read_manifest(out_dir):
    """The manifest in ``out_dir/export.json``, its paths joined with ``out_dir``."""
    with open(os.path.join(out_dir, MANIFEST)) as handle:
        manifest = json.load(handle)
    manifest["saved_model"] = os.path.join(out_dir, manifest["saved_model"])
    for info in manifest["litert"].values():
        info["path"] = os.path.join(out_dir, info["path"])
    return manifest
