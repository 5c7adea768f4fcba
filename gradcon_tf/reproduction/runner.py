"""The runner of ``gradcon reproduce``: every run of a protocol (:mod:`.protocols`) not finished
yet under the results folder, one after the other, the report rewritten after each.

Finished runs are kept (:mod:`.store`), so an interrupted command resumes where it stopped, and
several processes may share one folder; rerun the full command at the end to write the report
over all runs.
"""

import dataclasses
import functools
import os
import time

import keras
import numpy as np

from gradcon_tf import _files as files
from gradcon_tf import experiment
from gradcon_tf.recipe import Recipe
from gradcon_tf.reproduction import protocols, provenance, report, store, training
from gradcon_tf.reproduction.protocols import base

#: Options of :func:`reproduce` that choose the training recipe: the fields of
#: :class:`~gradcon_tf.recipe.Recipe` but ``epochs`` (an argument of its own) and ``backbone``.
RECIPE_OPTIONS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("epochs", "backbone"))


def recipe_settings(data, epochs, **options):
    """The :class:`~.store.Settings` of the recipe ``options`` (:data:`RECIPE_OPTIONS`, None:
    the default) trained ``epochs`` on ``data``; alpha and beta are the method's
    (``loss_weights="data"``: the paper's, which each run scales)."""
    recipe = Recipe().replace(epochs=int(epochs), **options)
    return store.Settings.from_recipe(data, recipe, **experiment.method_arguments(recipe.method))


def reproduce(
    data, classes, seeds, epochs, out, protocol="one-class", command=None, report_only=False,
    verbose=1, log=print, **options,
):
    """Train and score every run of ``protocol`` not finished yet under ``out``; write the report
    (``summary.json``, ``README.md``, figures) and return the summary.

    ``seeds``: a list of seeds or a count (``3`` -> seeds 0, 1, 2); GPND: the folds.
    ``options``: the recipe's (:data:`RECIPE_OPTIONS`, :func:`recipe_settings`; loss weights by
    default the protocol's) and the protocol's own (one-class: ``milestones``; conditions:
    ``challenges``, ``levels``; elpv: ``cells``, ``image_size``).
    ``command``: the command line the report gives (default: this call). ``report_only``:
    train nothing, write the report over the runs already finished. Runs go seed by seed, so
    that an interrupted command leaves whole seeds.
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    arguments = [repr(value) for value in (data, list(classes), seeds, epochs, out)]
    arguments += [f"{k}={v!r}" for k, v in {"protocol": protocol, **options}.items()]
    command = command or f"reproduce({', '.join(arguments)})"
    recipe = {name: options.pop(name) for name in RECIPE_OPTIONS if name in options}
    protocol_class = protocols.get(protocol)
    if recipe.get("loss_weights") is None:
        recipe["loss_weights"] = protocol_class.loss_weights
    request = base.Request(
        data, list(classes), seeds, recipe_settings(data, epochs, **recipe), command
    )
    chosen = protocol_class(request, **options)
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    records, scores, todo = _finished_runs(out, chosen, report_only, log)
    settings = request.settings
    if report_only:
        try:
            settings = store.recorded_settings(
                settings, list(records.values()), store.REPORTED_AS_RECORDED
            )
        except ValueError as error:
            raise ValueError(f"{out}: {error}") from None
        asked, recorded = request.settings.as_dict(), settings.as_dict()
        differ = [f"{k} {recorded[k]!r} (asked: {asked[k]!r})" for k in asked if asked[k] != recorded[k]]
        if differ:
            log(f"the finished runs were trained with {', '.join(differ)}: reported as recorded")
    else:
        _run_all(out, chosen, todo, records, scores, verbose, log)
    summary = write_report(out, chosen, records, scores, settings, figures=True, log=log)
    line = chosen.result_line(summary, out)
    if line:
        log(line)
    return summary


def _finished_runs(out, protocol, report_only, log):
    """(records, scores) of the runs finished in ``out``, {key: ...} each, and the (key, run) of
    the others, in running order."""
    settings = protocol.request.settings
    ignore = store.REPORTED_AS_RECORDED if report_only else ()
    records, scores, todo = {}, {}, []
    runs = protocol.runs()
    for key, run in runs.items():
        finished = store.load_finished_run(
            out, run, settings, protocol.milestones, ignore, protocol.arrays
        )
        if finished is None:
            todo.append((key, run))
        else:
            records[key], scores[key] = finished
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already finished in {out}; "
        f"{len(todo)} to run.")
    return records, scores, [] if report_only else todo


def _run_all(out, protocol, todo, records, scores, verbose, log):
    """Run the runs ``todo`` of ``protocol`` into ``records`` and ``scores``, storing each and
    rewriting the report after each (the figures every 5 runs)."""
    if not todo:
        return
    settings = protocol.request.settings
    loaded = protocol.load()
    # Record the checkout's state now, with the code loaded, not when each run ends, since the
    # checkout may change while the runs go on.
    code = provenance.code_version()
    train = functools.partial(training.train, settings=settings, verbose=verbose)
    total, run_times = len(records) + len(todo), []
    for done, (key, run) in enumerate(todo, start=1):
        eta = ""
        if run_times:
            eta = f", about {np.mean(run_times) * (len(todo) - done + 1) / 60:.0f} min left"
        name = " ".join(f"{k.replace('inlier_', '')} {v}" for k, v in run.items())
        log(f"[{total - len(todo) + done}/{total}] {name}: {settings.epochs} epochs{eta}")
        finished = store.load_finished_run(out, run, settings, protocol.milestones, (), protocol.arrays)
        if finished is not None:  # another process working on the same folder did it meanwhile
            records[key], scores[key] = finished
            log("  finished meanwhile by another process; skipped")
            continue
        started = time.perf_counter()
        outcome = protocol.run(loaded, key, train)
        records[key], scores[key] = training.record(run, settings, outcome, code), outcome.scores
        keras.backend.clear_session()  # the next run starts from a fresh Keras state
        store.write_run(out, run, records[key], scores[key])
        run_times.append(time.perf_counter() - started)
        log(f"  {protocol.run_line(records[key])}; {run_times[-1]:.0f} s")
        write_report(
            out, protocol, records, scores, settings,
            figures=done % 5 == 0 and done < len(todo), log=log,
        )


def write_report(out, protocol, records, scores, settings, figures=True, log=print):
    """Write ``summary.json`` (first its ``protocol_id`` and ``headline``, the keys every results
    folder shares), ``README.md`` and, with ``figures``, the protocol's figures (when it has
    some); returns the summary. Without ``figures`` the report names those already in
    ``out``."""
    summary = protocol.summarize(records, settings)
    summary = {"protocol_id": protocol.name, "headline": protocol.headline(summary), **summary}
    store.write_json(os.path.join(out, "summary.json"), summary)
    shown = protocol.write_figures(out, summary, records, scores, figures, log)
    files.write_text(
        os.path.join(out, "README.md"), report.render(summary, protocol.report(summary, shown))
    )
    return summary
