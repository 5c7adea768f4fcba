"""What a protocol of ``gradcon reproduce`` is: the request it serves and the methods the runner
(:mod:`gradcon_tf.reproduction.runner`) and the report (:mod:`gradcon_tf.reproduction.report`)
call on it."""

import dataclasses

from gradcon_tf import data as datasets
from gradcon_tf.splits import one_class_split
from gradcon_tf.reproduction import report


@dataclasses.dataclass(frozen=True)
class Request:
    """What ``gradcon reproduce`` was asked for."""

    data: str  # the dataset spec (gradcon_tf.data.load)
    classes: list  # inlier classes (protocols without classes ignore them)
    seeds: list  # seeds (GPND: folds)
    settings: object  # the training recipe, a reproduction.store.Settings
    command: str  # the command that regenerates the folder, as the report shows it

    @property
    def dataset_name(self):
        """The dataset's name in ``references.json``: ``mnist`` for ``mnist:DIR``, ``tfds:NAME``
        gives NAME."""
        kind, _, rest = self.data.partition(":")
        return rest.split("/")[0] if kind == "tfds" else kind


class Protocol:
    """One of the paper's experiments: its runs, how one run loads its data, trains and
    evaluates, and how the runs' records are summarised and reported.

    A subclass sets :attr:`name` and :attr:`description` and defines :meth:`runs`, :meth:`run`,
    :meth:`summarize` and :meth:`report`, and names its :meth:`headline`; options of its own (``gradcon reproduce`` passes the
    ones given) are keyword arguments of its ``__init__``.
    """

    #: ``--protocol NAME``.
    name = None
    #: What the protocol does, for the summary and the report.
    description = None
    #: Arrays every run's ``.npz`` must hold for the run to be reused.
    arrays = ()
    #: Shorter epoch budgets every run also records; a finished run without them is redone.
    milestones = ()
    #: The loss weights (:mod:`gradcon_tf.loss_weights`) when the request names none.
    loss_weights = "paper"
    #: Whether the request's classes choose runs (``--classes`` in the report's command).
    uses_classes = True

    def __init__(self, request, **options):
        if options:
            raise ValueError(f"the {self.name} protocol takes no option {', '.join(options)}")
        self.request = request

    def runs(self):
        """{key: the fields that identify the run (its record's and file's)}, in running order."""
        raise NotImplementedError

    def load(self):
        """The data every run reads; loaded once, when some run must train."""
        return datasets.load(self.request.data)

    def run(self, loaded, key, train):
        """Train and evaluate run ``key`` on ``loaded``: a
        :class:`~gradcon_tf.reproduction.training.Outcome`. ``train(split, seed, callbacks=())``
        trains with the request's recipe (:func:`gradcon_tf.reproduction.training.train`)."""
        raise NotImplementedError

    def summarize(self, records, settings):
        """The ``summary.json`` dict of the finished runs' records {key: record}, made with
        ``settings``."""
        raise NotImplementedError

    def headline(self, summary):
        """The one number the folder is read by: ``{"metric": what it is, "value": the number,
        None while runs are missing}``; a protocol that names none gives None for both."""
        return {"metric": None, "value": None}

    def report(self, summary, figures=()):
        """The :class:`~gradcon_tf.reproduction.report.Report` of ``summary``, naming the
        ``figures`` (file names in the folder)."""
        raise NotImplementedError

    def write_figures(self, out, summary, records, scores, write, log):
        """Write the figures to ``out`` when ``write`` is true; the names of those to show."""
        return ()

    def run_line(self, record):
        """What the log says of a finished run."""
        return f"best epoch {record['best_epoch']}"

    def result_line(self, summary, out):
        """What the log says at the end (None: nothing)."""
        return f"report in {out}"

    def title(self, summary, what):
        """The report's title for one model per run: ``what`` the protocol is."""
        return (
            f"{report.method_label(summary)} on `{summary['dataset']}`, {what}: "
            f"{summary['epochs']} epochs per model"
        )


class PerClassAndSeed(Protocol):
    """A protocol with one run per (inlier class, seed) on the paper's one-class split."""

    def runs(self):
        classes, seeds = self.request.classes, self.request.seeds
        return {(c, s): {"inlier_class": c, "seed": s} for s in seeds for c in classes}

    def split(self, loaded, key):
        """The one-class split (:func:`gradcon_tf.splits.one_class_split`) of run ``key``."""
        inlier, seed = key
        return one_class_split(
            loaded["train"], loaded["test"], inlier, seed=seed,
            validation_fraction=self.request.settings.validation_fraction,
        )
