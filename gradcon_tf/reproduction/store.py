"""The run store of ``gradcon reproduce``: settings, finished-run files, and resuming from them.

Each run writes ``runs/STEM.npz`` (its per-sample test scores) and then ``runs/STEM.json`` (its
record; written last, it marks the run finished), both to a temporary name renamed into place, so
a crash never leaves a half-written file under the final name. A run is reused only when its JSON
parses, says ``"complete": true``, was made with the same settings and its ``.npz`` loads.
"""

import dataclasses
import io
import json
import os
import zipfile

import numpy as np

from gradcon_tf import _files as files
from gradcon_tf.recipe import Recipe

RUN_FORMAT = 1

#: Arrays every one-class run's ``.npz`` holds (other protocols: ``Protocol.arrays``).
ONE_CLASS_ARRAYS = ("is_anomaly", "score", "recon", "grad_loss", "layer_cosines")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that makes two runs comparable; a finished run is reused only if it matches."""

    data: str
    epochs: int
    batch_size: int
    alpha: float
    beta: float
    validation_fraction: float = 0.1
    method: str = "gradcon"  # experiment.METHODS; records made before it existed are GradCon
    #: The class of GradCon.compile()'s default optimizer; records made before this field existed
    #: trained with Keras' Adam.
    optimizer: str = "CorrectedEpsilonAdam"
    #: False: the release's initialisation of the output bias (``--release-init``).
    output_bias_from_data: bool = True
    #: Whether a collapsed start was started again from new weights: what ``--release-init``
    #: did until 2026-12-06 (``--redraw-collapsed``); kept so that those runs report as
    #: recorded. Runs since never redraw.
    redraw_collapsed: bool = False
    #: Model selection among the epochs 1, 1 + k, ... and the last, as the release writes its
    #: checkpoints (``--checkpoint-every 5``); 1: every epoch (``callbacks.KeepBestWeights``).
    checkpoint_every: int = 1
    #: Train again from the same weights with the output bias from data when the first epoch
    #: leaves a blank reconstruction (``experiment.train_one_class(initialization="guarded")``).
    bias_from_data_on_collapse: bool = False
    #: How the epoch's losses average the batches (model selection reads val_loss).
    loss_average: str = "batch-size weighted"
    #: ``"paper"``: alpha and beta as above; ``"data"``: both scaled by each run's training
    #: images' pixel variance (:mod:`gradcon_tf.loss_weights`; each record holds its own).
    loss_weights: str = "paper"
    #: ``GradCon``'s image score (``"mean"``, the paper's, or ``"local"``) and illumination removal.
    image_score: str = "mean"
    remove_illumination: bool = False
    #: Adam's learning rate (the paper's 1e-3 unless ``--learning-rate``).
    learning_rate: float = 1e-3
    #: Eq. 6's running averages at a guarded restart: ``"kept"`` from the abandoned run, or
    #: ``"cleared"`` (records made before this field). Compared only for runs the guard
    #: restarted (:data:`ONLY_IF_RESTARTED`): the others trained the same either way.
    restart_averages: str = "kept"

    @classmethod
    def from_recipe(cls, data, recipe, alpha, beta):
        """The settings of runs trained with ``recipe`` (the fields both have, by name) on
        ``data``; ``alpha`` and ``beta``: the method's (each run scales data weights)."""
        return cls(
            data=data, alpha=alpha, beta=beta,
            output_bias_from_data=recipe.initialization == "data",
            bias_from_data_on_collapse=recipe.initialization == "guarded",
            **{name: getattr(recipe, name) for name in _shared_with_recipe(cls)},
        )

    def recipe(self):
        """The :class:`~gradcon_tf.recipe.Recipe` these settings train with."""
        return Recipe(initialization=self.initialization,
                      **{name: getattr(self, name) for name in _shared_with_recipe(self)})

    @property
    def initialization(self):
        """The ``experiment.INITIALIZATIONS`` entry these settings train with."""
        if self.bias_from_data_on_collapse:
            return "guarded"
        return "data" if self.output_bias_from_data else "release"

    def as_dict(self):
        return dataclasses.asdict(self)


#: Settings that records made before the field existed lack, with the value they were made with.
LEGACY_SETTINGS = {
    "method": "gradcon",
    "optimizer": "Adam",
    "output_bias_from_data": True,
    "redraw_collapsed": False,
    "checkpoint_every": 1,
    "bias_from_data_on_collapse": False,
    "loss_average": "per batch",
    "loss_weights": "paper",
    "image_score": "mean",
    "remove_illumination": False,
    "learning_rate": 1e-3,
    "restart_averages": "cleared",
}

#: Settings that act only after a guarded restart: a run the guard did not restart matches
#: every value of them.
ONLY_IF_RESTARTED = ("restart_averages",)

#: What a report over finished runs (``report_only``) takes from the records, not from the
#: command: every setting but the data and the epochs, so that a folder made with an earlier
#: recipe (Keras' Adam, no redraws, ...) reports the runs it holds, as they were trained.
REPORTED_AS_RECORDED = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name not in ("data", "epochs"))


def write_json(path, value):
    files.write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_npz(path, arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files.write_bytes(path, buffer.getvalue())


def run_stem(run):
    """The file stem of the run identified by ``run``: {"inlier_class": 3, "seed": 0} ->
    ``class3-seed0``; other fields (fold, ...) add ``-fold1`` etc. in order."""
    names = {"inlier_class": "class", "challenges": ""}
    return "-".join(f"{names.get(key, key)}{value}" for key, value in run.items())


def run_paths(out, run):
    stem = os.path.join(out, "runs", run_stem(run))
    return stem + ".json", stem + ".npz"


def write_run(out, run, record, scores):
    """Store a finished run: the scores first, then the record that marks it finished."""
    json_path, npz_path = run_paths(out, run)
    write_npz(npz_path, scores)
    write_json(json_path, record)


def load_finished_run(out, run, settings, milestones=(), ignore=(), arrays=ONE_CLASS_ARRAYS):
    """The finished run's record and scores, or None when it must be (re)done.

    ``run``: the fields that identify it (e.g. inlier_class and seed). A run asked for
    ``milestones`` it did not record, or whose ``.npz`` lacks one of ``arrays``, is redone as
    well. Settings named in ``ignore`` may differ.
    """
    json_path, npz_path = run_paths(out, run)
    try:
        with open(json_path) as handle:
            record = json.load(handle)
        if not (
            isinstance(record, dict)
            and record.get("complete") is True
            and record.get("format") == RUN_FORMAT
            and _compared(_recorded(record), record, ignore)
            == _compared(settings.as_dict(), record, ignore)
            and all(record.get(key) == value for key, value in run.items())
            and {str(m) for m in milestones if m < settings.epochs}
            <= set(record.get("milestones", {}))
        ):
            return None
        with np.load(npz_path, allow_pickle=False) as stored:
            scores = {key: stored[key] for key in stored.files}
        if not set(arrays) <= set(scores):
            return None
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
    ):  # missing, truncated, garbled
        return None
    return record, scores


def recorded_settings(settings, records, keys):
    """``settings`` with ``keys`` taken from the records (which must agree on them; on
    :data:`ONLY_IF_RESTARTED`, the records of restarted runs)."""
    for key in keys:
        counted = [r for r in records if key not in ONLY_IF_RESTARTED or _restarted(r)]
        values = {str(_recorded(r)[key]) for r in counted}
        if len(values) > 1:
            raise ValueError(f"the finished runs differ in {key} ({sorted(values)})")
        if values:
            settings = dataclasses.replace(settings, **{key: _recorded(counted[0])[key]})
    return settings


def _recorded(record):
    """The settings a record was made with, legacy values filled in."""
    return {**LEGACY_SETTINGS, **record.get("settings", {})}


def _restarted(record):
    """Whether the record's run was restarted by the guard (``--init guarded``)."""
    initialization = record.get("initialization") or {}
    return bool(_recorded(record)["bias_from_data_on_collapse"] and initialization.get("collapsed"))


def _compared(settings, record, ignore):
    """``settings`` as compared with ``record``'s: without ``ignore``, nor
    :data:`ONLY_IF_RESTARTED` for a run the guard did not restart."""
    skipped = (*ignore, *(() if _restarted(record) else ONLY_IF_RESTARTED))
    return _without(settings, skipped)


def _shared_with_recipe(settings):
    """The names of the fields that the settings and a Recipe both have."""
    names = {f.name for f in dataclasses.fields(Recipe)}
    return [f.name for f in dataclasses.fields(settings) if f.name in names]


def _without(settings, keys):
    return {k: v for k, v in settings.items() if k not in keys}
