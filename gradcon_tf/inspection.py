"""Your own images: train on a folder of normal images, evaluate on folders of normal and
abnormal images with optional defect masks (anomalib's folder convention,
:mod:`gradcon_tf.data.anomaly_folders`).

    model = train_on_normal_folder("good/", epochs=50)            # or the three steps below
    images = load_normal_folder("good/")
    split = normal_split(images, validation_fraction=0.2, seed=0)
    model = train_one_class(split, epochs=50)
    result = evaluate_folders(model, "test/good", "test/defects", masks="ground_truth")
    print(result.summary())
"""

import dataclasses
import os
import warnings

import numpy as np

from gradcon_tf import metrics
from gradcon_tf.backbones import DEFAULT_BACKBONE, NO_BACKBONE, recipe_defaults
from gradcon_tf.data import anomaly_folders
from gradcon_tf.data.base import DataFileError
from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.recipe import Recipe
from gradcon_tf.splits import OneClassSplit

#: Share of a normal folder held out to select the epoch and calibrate the threshold ...
DEFAULT_VALIDATION_FRACTION = 0.2
#: ... and at least this many images; at least MIN_TRAINING_IMAGES others are trained on.
MIN_HELD_OUT = 10
MIN_TRAINING_IMAGES = 10
#: The smallest side of the images a model trains on: a staged network's smallest input
#: (networks.MIN_STAGED_SIDE); smaller images hold too little to resize up to the paper's 28 px.
MIN_IMAGE_SIDE = 8
#: The report shows this many highest-scoring normal and lowest-scoring abnormal images.
WORST_SHOWN = 4


class FolderWarning(UserWarning):
    """Something in the folders the evaluation works around (masks missing for some images)."""


# ---------------------------------------------------------------------- training


def split_sizes(count, validation_fraction=DEFAULT_VALIDATION_FRACTION):
    """(trained, held out) of ``count`` normal images; a ValueError when they are too few."""
    held_out = max(MIN_HELD_OUT, int(round(validation_fraction * count)))
    if count - held_out < MIN_TRAINING_IMAGES:
        raise ValueError(
            f"{count} normal images are too few: {held_out} are held out (validation fraction "
            f"{validation_fraction:g}, at least {MIN_HELD_OUT}) and at least "
            f"{MIN_TRAINING_IMAGES} must remain to train on"
        )
    return count - held_out, held_out


def check_normal_folder(folder, image_size=None, validation_fraction=DEFAULT_VALIDATION_FRACTION):
    """Scan ``folder`` (headers only) as :func:`load_normal_folder` reads it: the error it would
    raise (no images, an unreadable file, mixed sizes without ``image_size``, too few images)."""
    scanned = anomaly_folders.scan_folder(folder, "normal")
    scanned.common_size(image_size)
    try:
        split_sizes(len(scanned), validation_fraction)
    except ValueError as error:
        raise DataFileError(f"{scanned.folder}: {error}") from None
    return scanned


def load_normal_folder(folder, image_size=None):
    """The images directly in ``folder`` as (N, H, W, C) uint8: at ``image_size`` (an int or
    (height, width); default: the images' own size, which they must then share), grayscale
    when every image is, else RGB."""
    scanned = anomaly_folders.scan_folder(folder, "normal")
    size = scanned.common_size(image_size)
    return anomaly_folders.read_images(scanned.paths, size, scanned.channels)


def normal_split(images, validation_fraction=DEFAULT_VALIDATION_FRACTION, seed=0):
    """A :class:`~gradcon_tf.splits.OneClassSplit` of normal ``images`` for
    :func:`~gradcon_tf.experiment.train_one_class`: a seeded share held out as ``validation``
    (at least :data:`MIN_HELD_OUT`), the rest ``train``; no test images."""
    trained, _ = split_sizes(len(images), validation_fraction)
    order = np.random.default_rng(seed).permutation(len(images))
    return OneClassSplit(
        train=images[order[:trained]],
        validation=images[order[trained:]],
        test=images[:0],
        test_is_anomaly=np.zeros(0, bool),
    )


def folder_recipe(**options):
    """The recipe of :func:`train_on_normal_folder` and ``gradcon train --normal``: ``options``
    (:class:`~gradcon_tf.recipe.Recipe` fields), else on the features of ``backbone`` (default
    EfficientNet-Lite0; ``"none"``: on pixels, from scratch) with alpha and beta scaled to what
    the autoencoder sees (``loss_weights="data"``), and the epochs and image score of the
    recipe for what it trains on: 100 and ``"local"`` on features, 20 and ``"mean"`` on pixels
    (docs/features.md)."""
    options = {name: value for name, value in options.items() if value is not None}
    backbone = options.pop("backbone", DEFAULT_BACKBONE)
    on_features = backbone != NO_BACKBONE
    defaults = {"loss_weights": "data", "backbone": backbone if on_features else None,
                **recipe_defaults(on_features)}
    return Recipe().replace(**{**defaults, **options})


def train_on_normal_folder(
    folder, image_size=None, validation_fraction=DEFAULT_VALIDATION_FRACTION, seed=0,
    recipe=None, on_split=None, verbose=1, callbacks=(), **options,
):
    """GradCon trained on the normal images of ``folder`` (:func:`load_normal_folder`,
    :func:`normal_split`, then :func:`~gradcon_tf.experiment.train_one_class` with ``seed``):
    the epoch of the lowest held-out loss, the threshold calibrated on the held-out images.
    ``recipe``: how (default :func:`folder_recipe` of ``options``, as ``gradcon train
    --normal``). ``on_split(images, split)``, if given, is called once the folder is read and
    split, before training."""
    from gradcon_tf import experiment

    recipe = recipe.replace(**options) if recipe is not None else folder_recipe(**options)
    images = load_normal_folder(folder, image_size)
    split = normal_split(images, validation_fraction, seed)
    if on_split is not None:
        on_split(images, split)
    return experiment.train_one_class(split, seed=seed, verbose=verbose, callbacks=callbacks,
                                      recipe=recipe)


# ---------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class FolderEvaluation:
    """What :func:`evaluate_folders` measured. Images are the normal ones, then the abnormal."""

    paths: list
    defect_types: list  # "" for the normal images
    is_anomaly: np.ndarray  # bool, the truth
    scores: dict  # GradCon.score()'s arrays, without maps
    threshold: float  # the model's (None when it has none)
    image_score: str  # the model's: "mean" (the paper's) or "local" (GradCon.image_score)
    image: dict  # auroc, aupr, precision, recall, f1 (the last three NaN without a threshold)
    parts: dict  # image AUROC of each score kind: {"gradcon", "recon", "grad"} (evaluation.py)
    defects: dict  # {defect type: {"images", "auroc", "recall"}}
    pixel: dict  # {"auroc", "aupro", "images"}, or {} without masks
    masks_missing: int  # abnormal images without a mask, left out of the pixel metrics
    # the report's overlays: {"group", "index", "path", "image", "maps", "score", "p_value",
    # "is_anomaly"} each
    worst: list
    folders: dict  # {"normal", "abnormal"}: the folders as given
    mask_paths: list  # each image's mask file, None for the normal ones and those without

    def relative_path(self, index):
        """Image ``index``'s path relative to its folder (normal or abnormal) as given."""
        group = "abnormal" if self.is_anomaly[index] else "normal"
        return os.path.relpath(self.paths[index], self.folders[group])

    def summary(self):
        """The metrics as Markdown tables (readable as plain text)."""
        normal = int(np.sum(~self.is_anomaly))
        lines = [
            f"{normal} normal and {len(self.paths) - normal} abnormal images; {self.image_score} "
            "image score, threshold "
            + ("none (uncalibrated model)" if self.threshold is None else f"{self.threshold:.6g}"),
            "",
            "| images | AUROC | AUPR | F1 | precision | recall |",
            "|---|---|---|---|---|---|",
            "| all | {auroc:.3f} | {aupr:.3f} | {f1:.3f} | {precision:.3f} | {recall:.3f} |".format(
                **self.image
            ),
            "",
            ("image AUROC of the score's parts: " if self.image_score == "mean" else
             "image AUROC of the local score and of its parts' image means (not local): ")
            + ", ".join(f"{SCORE_KINDS[name][1]} {value:.3f}" for name, value in self.parts.items()),
            "",
            "| defect type | images | AUROC (vs normal) | recall at the threshold |",
            "|---|---|---|---|",
        ]
        for kind, row in self.defects.items():
            lines.append(f"| {kind} | {row['images']} | {row['auroc']:.3f} | {row['recall']:.3f} |")
        if self.pixel:
            lines += [
                "",
                f"pixels ({self.pixel['images']} images: the normal ones and the abnormal ones "
                f"with masks): AUROC {self.pixel['auroc']:.3f}, AUPRO (to FPR "
                f"{metrics.AUPRO_MAX_FPR:g}) {self.pixel['aupro']:.3f}",
            ]
        return "\n".join(lines) + "\n"


def evaluate_folders(model, normal, abnormal, masks=None, batch_size=64, worst=WORST_SHOWN):
    """Score the images of the ``normal`` and ``abnormal`` folders (resized to the model's input
    size and converted to its channels) with ``model`` and measure the detection: image AUROC,
    AUPR (average precision), precision, recall and F1 at the model's threshold, AUROC per
    defect type; with a ``masks`` folder also pixel AUROC and AUPRO of the GradCon map (normal
    images have all-zero masks; abnormal images without a mask are left out, with a warning).
    ``worst``: how many of the highest-scoring normal and of the lowest-scoring abnormal images
    keep their maps for the report. Returns a :class:`FolderEvaluation`.
    """
    folders = anomaly_folders.scan_inspection_folders(normal, abnormal, masks)
    _warn_about_masks(folders)
    size, channels = tuple(model.image_shape[:2]), model.image_shape[-1]
    paths = folders.normal.paths + folders.abnormal.paths
    images = anomaly_folders.read_images(paths, size, channels)
    is_anomaly = np.arange(len(paths)) >= len(folders.normal)
    with_mask = ~is_anomaly
    if folders.masks:
        with_mask[len(folders.normal) :] = [m is not None for m in folders.masks]
    scores, score_maps = _scores(model, images, with_mask if folders.masks else None, batch_size)
    defect_types = folders.normal.defect_types + folders.abnormal.defect_types
    return FolderEvaluation(
        paths=paths,
        defect_types=defect_types,
        is_anomaly=is_anomaly,
        scores=scores,
        threshold=model.threshold,
        image_score=model.image_score,
        image=image_metrics(scores["score"], is_anomaly, model.threshold),
        parts={
            name: metrics.auroc(scores[key], is_anomaly)
            for name, (key, _) in score_kinds(scores).items()
        },
        defects=defect_metrics(scores["score"], defect_types, model.threshold),
        pixel=_pixel_metrics(folders, score_maps, size) if folders.masks else {},
        masks_missing=folders.masks_missing,
        worst=_worst(model, images, paths, scores["score"], is_anomaly, worst),
        folders={"normal": os.fspath(normal), "abnormal": os.fspath(abnormal)},
        mask_paths=[None] * len(folders.normal) + (folders.masks or [None] * len(folders.abnormal)),
    )


def _warn_about_masks(folders):
    if folders.masks_missing:
        warnings.warn(
            f"{folders.masks_missing} of {len(folders.abnormal)} abnormal images have no mask "
            "(matched by file stem): the pixel metrics leave them out",
            FolderWarning, stacklevel=3,
        )
    if folders.masks_resized:
        warnings.warn(
            f"{folders.masks_resized} masks are of another size than their image: resized "
            "(nearest), as the images are, to the model's input size",
            FolderWarning, stacklevel=3,
        )


def _scores(model, images, with_map, batch_size):
    """(scores without maps, GradCon maps of the images where ``with_map``, or None), scored
    batch by batch so that only the maps kept are held."""
    parts, maps = [], []
    for start in range(0, len(images), batch_size):
        want = np.zeros(0, bool) if with_map is None else with_map[start : start + batch_size]
        outputs = model.score(images[start : start + batch_size], batch_size, maps=want.any())
        if want.any():
            maps.append(outputs["score_map"][want].astype(np.float32))
        parts.append({k: v for k, v in outputs.items() if not k.endswith("_map")})
    scores = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return scores, (np.concatenate(maps) if maps else None)


def image_metrics(scores, is_anomaly, threshold):
    """{"auroc", "aupr", "precision", "recall", "f1"}: the last three at ``threshold`` (NaN
    when it is None)."""
    nan = float("nan")
    rates = (
        metrics.rates_at_threshold(scores, is_anomaly, threshold)
        if threshold is not None
        else {"precision": nan, "recall": nan, "f1": nan}
    )
    return {
        "auroc": metrics.auroc(scores, is_anomaly),
        "aupr": metrics.average_precision(scores, is_anomaly),
        **rates,
    }


def defect_metrics(scores, defect_types, threshold):
    """{defect type: {"images", "auroc" (vs the normal images, type ""), "recall" (share above
    ``threshold``; NaN without one)}}."""
    scores, types = np.asarray(scores), np.asarray(defect_types)
    normal = types == ""
    result = {}
    for kind in sorted(set(defect_types) - {""}):
        chosen, members = normal | (types == kind), scores[types == kind]
        result[kind] = {
            "images": len(members),
            "auroc": metrics.auroc(scores[chosen], types[chosen] == kind),
            "recall": float("nan") if threshold is None else float(np.mean(members > threshold)),
        }
    return result


def _pixel_metrics(folders, score_maps, size):
    """Pixel AUROC and AUPRO of ``score_maps`` (the normal images, then the abnormal ones with
    masks) against their masks."""
    masks = [np.zeros(size, bool)] * len(folders.normal) + [
        anomaly_folders.read_mask(m, size) for m in folders.masks if m is not None
    ]
    masks = np.stack(masks)
    if not masks.any():
        raise DataFileError(
            f"{len(masks) - len(folders.normal)} masks matched (e.g. "
            f"{next(m for m in folders.masks if m)}) and every one is empty (no pixel > 0)"
        )
    return {
        "auroc": metrics.auroc(score_maps.reshape(-1), masks.reshape(-1)),
        "aupro": metrics.aupro(score_maps, masks),
        "images": len(masks),
    }


def _worst(model, images, paths, scores, is_anomaly, count=WORST_SHOWN):
    """The ``count`` highest-scoring normal and lowest-scoring abnormal images with their maps."""
    normal, abnormal = np.flatnonzero(~is_anomaly), np.flatnonzero(is_anomaly)
    chosen = [("normal", i) for i in normal[np.argsort(-scores[normal])][:count]]
    chosen += [("abnormal", i) for i in abnormal[np.argsort(scores[abnormal])][:count]]
    if not chosen:
        return []
    outputs = model.score(images[[i for _, i in chosen]], maps=True)
    return [
        {
            "group": group,
            "index": int(i),
            "path": paths[i],
            "image": images[i],
            "maps": {k: outputs[k][j] for k in ("recon_map", "grad_map", "score_map")},
            "score": float(outputs["score"][j]),
            "p_value": float(outputs["p_value"][j]) if "p_value" in outputs else float("nan"),
            "is_anomaly": bool(outputs["is_anomaly"][j]) if "is_anomaly" in outputs else None,
        }
        for j, (group, i) in enumerate(chosen)
    ]
