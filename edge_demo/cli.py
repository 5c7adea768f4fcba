"""gradcon-edge: score images with an exported GradCon LiteRT model; report scores and latency.

    gradcon-edge --model gradcon_f32.tflite shot.png FOLDER 'more/*.png' [--csv scores.csv]
    gradcon-edge --model gradcon_f32.tflite 'line/**/*.jpg' --csv scores.csv --sheet top.png --top 16
    gradcon-edge --model gradcon_f32.tflite --watch INBOX --max-images 100 --timeout 60
    gradcon-edge --model gradcon_f32.tflite shots --maps overlays --map-scale calibration

INPUTs are image files, folders (their images, sorted by name) and quoted glob patterns, scored in
that order. --watch scores the images already in DIR, then new ones once their size is stable,
until --max-images were scored or --timeout seconds passed (or Ctrl-C); write images under a
hidden or non-image name and rename them, so that no half-written file is read.
--maps DIR writes one PNG per image, named after it: the image, its anomaly maps (reconstruction
error, gradient, GradCon) with colour bars and the GradCon map over the image, with score and
p-value (the model's map signature); --map-scale calibration draws every map on the scale of the
calibration images' maps (exported with the model) instead of its own.
Latencies are of the LiteRT calls after one untimed warm-up call at the batch size.
Exit status: 0 all scored, 1 some images could not be read (each named on stderr, the rest
scored), 2 usage error (one line on stderr: a missing or corrupt model, an input with no images, a
named file that is not an image, a bad option) or, with --strict, the first image that cannot be
read (every image is decoded before any is scored, so nothing is written).
"""

import argparse
import math
import os
import sys
import time

import numpy as np

from . import __version__
from .portable import overlays
from .portable.image_files import ImageError, ImageReader, find_images, list_images, load_image
from .portable.results import CsvWriter, LineWriter, results_from_outputs
from .scorer import Scorer, latency_summary, map_scales
from .sheet import TopImages, write_sheet

PROG = "gradcon-edge"
EXPORTER = "`gradcon export`"
DEFAULT_TIMEOUT = 60.0
DEFAULT_POLL_INTERVAL = 0.1
#: The exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line or its files: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing the usage block."""

    def error(self, message):
        raise UsageError(message)


def at_least(minimum, kind, maximum=None):
    """An argparse type: ``kind(text)``, at least ``minimum`` (and at most ``maximum``)."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not value >= minimum:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} >= {minimum}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum}, got {text!r}")
        return value

    return convert


#: The largest --batch-size: a batch of 256x256 RGB float images this size is ~800 MB.
MAX_BATCH_SIZE = 4096


def seconds(text):
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def is_saved_model_folder(path):
    """Whether ``path`` is a SavedModel folder, or TF Serving's folder of versions of one."""
    if not os.path.isdir(path):
        return False
    folders = [path] + [os.path.join(path, name) for name in os.listdir(path) if name.isdigit()]
    return any(os.path.isfile(os.path.join(folder, "saved_model.pb")) for folder in folders)


def finite_number(text):
    """An argparse type: a finite number (NaN or inf as a threshold would flag every image or
    none)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def parse_args(argv):
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    count = at_least(1, int)
    add("inputs", nargs="*", metavar="INPUT", help="image file, folder or quoted glob pattern")
    add("--model", metavar="FILE.tflite", required=True, help=".tflite written by `gradcon export`")
    add("--watch", metavar="DIR", help="score images as they appear in DIR (instead of INPUTs)")
    add("--max-images", metavar="N", type=count, help="--watch: stop after this many images")
    add("--timeout", metavar="S", type=seconds,
        help=f"--watch: stop after this many seconds ({DEFAULT_TIMEOUT:g})")
    add("--poll-interval", metavar="S", type=seconds,
        help=f"--watch: seconds between polls ({DEFAULT_POLL_INTERVAL:g})")
    add("--csv", metavar="FILE", help="write a CSV row per image to FILE ('-' or none: lines on stdout)")
    add("--sheet", metavar="FILE.png", help="PNG sheet of the --top most anomalous images")
    add("--top", metavar="K", type=count, help="images on the --sheet (default 16)")
    add("--maps", metavar="DIR", help="write an overlay PNG per image (image, maps, score) to DIR")
    add("--map-scale", choices=overlays.MAP_SCALE_CHOICES, default="image",
        help="--maps: each map on its own scale (image, default) or on the calibration images' "
        "(calibration)")
    add("--strict", action="store_true",
        help="stop at the first image that cannot be read (exit 2, nothing written)")
    add("--version", action="version", version=f"{PROG} {__version__}")
    add("--batch-size", metavar="N", type=at_least(1, int, MAX_BATCH_SIZE), default=1,
        help="images per call; 1 = single-image mode (default)")
    add("--threads", metavar="N", type=count, default=1, help="LiteRT CPU threads (default 1)")
    add("--threshold", metavar="T", type=finite_number,
        help="decision threshold (default: the one exported with the model)")
    add("--no-resize", dest="resize", action="store_false", help="reject images of the wrong size")
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.watch):
        raise UsageError("give INPUT files, folders or patterns, or --watch DIR (one of the two)")
    if not args.watch and (args.max_images, args.timeout, args.poll_interval) != (None, None, None):
        raise UsageError("--max-images, --timeout and --poll-interval apply only with --watch DIR")
    if args.top is not None and args.sheet is None:
        raise UsageError("--top needs --sheet FILE.png")
    if args.sheet is not None and not args.sheet.lower().endswith(".png"):
        raise UsageError(f"--sheet {args.sheet}: expected a file name ending in .png")
    for option, path in (("--csv", args.csv), ("--sheet", args.sheet)):
        if path not in (None, "-") and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"{option} {path}: folder {os.path.dirname(path)!r} does not exist")
    if args.map_scale != "image" and args.maps is None:
        raise UsageError("--map-scale applies only with --maps DIR")
    if args.maps is not None and os.path.exists(args.maps) and not os.path.isdir(args.maps):
        raise UsageError(f"--maps {args.maps}: exists and is not a folder")
    if args.watch and not os.path.isdir(args.watch):
        raise UsageError(f"--watch {args.watch}: not a folder")
    args.top = 16 if args.top is None else args.top
    args.timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    args.poll_interval = DEFAULT_POLL_INTERVAL if args.poll_interval is None else args.poll_interval
    return args


class ImageScorer:
    """Decodes image files, scores them in batches and hands each batch's results on.

    ``on_results(results, images, outputs)`` gets the :class:`Result` list, the uint8 images
    scored and the model's outputs for them. Images that cannot be read are named on stderr and
    counted in ``failed``, or, when ``strict``, stop the scoring (:class:`ImageError`).
    """

    def __init__(self, scorer, batch_size, resize, threshold, on_results, strict=False):
        self.scorer = scorer
        self.batch_size = batch_size
        self.threshold = threshold
        self.on_results = on_results
        self.scored = 0
        self.reader = ImageReader(PROG, scorer.image_shape, resize, strict)

    @property
    def failed(self):
        """How many files could not be read (named on stderr)."""
        return self.reader.skipped

    def load(self, path):
        """The model's pixels of ``path``, or None: skipped (:class:`ImageReader`)."""
        return self.reader.read(path)

    def score_files(self, paths):
        for start in range(0, len(paths), self.batch_size):
            loaded = [(path, self.load(path)) for path in paths[start : start + self.batch_size]]
            batch_paths = [path for path, image in loaded if image is not None]
            images = [image for _, image in loaded if image is not None]
            if not images:
                continue
            outputs = self.scorer.score(np.stack(images))
            decisions = None if math.isnan(self.threshold) else outputs["score"] > np.float32(self.threshold)
            results = results_from_outputs(batch_paths, outputs, decisions)
            self.on_results(results, images, outputs)
            self.scored += len(results)


def watch(image_scorer, folder, max_images, timeout, poll_interval):
    """Score files appearing in ``folder`` (once their size is stable across two polls)."""
    deadline = time.monotonic() + timeout
    seen, sizes = set(), {}
    while time.monotonic() < deadline:
        ready = []
        for path in list_images(folder):
            if path in seen:
                continue
            size = os.path.getsize(path)
            if sizes.get(path) == size:
                ready.append(path)
            sizes[path] = size
        if max_images is not None:
            ready = ready[: max_images - image_scorer.scored - image_scorer.failed]
        seen.update(ready)
        image_scorer.score_files(ready)
        if max_images is not None and image_scorer.scored + image_scorer.failed >= max_images:
            return
        time.sleep(poll_interval)


def print_summary(image_scorer, args, wall_seconds):
    scorer = image_scorer.scorer
    for line in image_scorer.reader.notes():
        print(line, file=sys.stderr)
    summary = latency_summary(scorer.timings)
    mode = "single-image" if args.batch_size == 1 else f"batch size {args.batch_size}"
    print(
        f"summary: {image_scorer.scored} images scored, {image_scorer.failed} failed; {mode}, "
        f"{args.threads} thread(s), signature {scorer.signature}, threshold {args.threshold:.6g}"
    )
    if summary["images"]:
        print(
            f"latency per call: p50 {summary['call_ms_p50']:.3f} ms, p99 {summary['call_ms_p99']:.3f} ms; "
            f"per image: p50 {summary['image_ms_p50']:.3f} ms, p99 {summary['image_ms_p99']:.3f} ms"
        )
        print(
            f"throughput: {summary['images_per_s']:.1f} images/s (inference), "
            f"{image_scorer.scored / wall_seconds:.1f} images/s (end to end, with decoding)"
        )


def open_scorer(args):
    """The :class:`Scorer` of ``--model``; a missing or corrupt file is a usage error."""
    if is_saved_model_folder(args.model):
        raise UsageError(f"{args.model}: a SavedModel folder (for TF Serving); {PROG} scores the "
                         f".tflite files written beside it by {EXPORTER}")
    if not os.path.isfile(args.model):
        raise UsageError(f"{args.model}: no such model file (expected a .tflite written by {EXPORTER})")
    try:
        return Scorer(args.model, threads=args.threads, maps=args.maps is not None)
    except ValueError as error:
        raise UsageError(str(error)) from None


def run(args):
    """Score ``args``' images; returns the exit status (0, or 1 when some images failed)."""
    scorer = open_scorer(args)
    if args.maps is not None:
        try:
            os.makedirs(args.maps, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--maps {args.maps}: cannot create the folder ({error.strerror})") from None
    try:
        paths = find_images(args.inputs)
    except ImageError as error:
        raise UsageError(str(error)) from None
    if args.maps is not None:
        watched = [os.path.join(args.watch, "*")] if args.watch else []
        try:
            overlays.check_overlay_folder(args.maps, paths + watched)
        except ValueError as error:
            raise UsageError(str(error)) from None
    scales = None
    warm_up_outputs = scorer.warm_up(args.batch_size)
    if args.map_scale == "calibration":
        scales = map_scales(warm_up_outputs)
        if scales is None:
            raise UsageError(
                f"--map-scale calibration: {args.model} has no map scales (exported before they "
                "were kept, or from a model calibrated without them); export the model again with "
                f"{EXPORTER} after calibrating it, or use --map-scale image"
            )
    if args.threshold is None:
        args.threshold = float(warm_up_outputs["threshold"][0])  # NaN: none exported
    image_scorer = ImageScorer(scorer, args.batch_size, args.resize, args.threshold, None, args.strict)
    if args.strict:
        for path in paths:  # before anything is written
            try:
                load_image(path, scorer.image_shape, args.resize)
            except ImageError as error:
                raise UsageError(f"{error} (--strict)") from None
    to_file = args.csv not in (None, "-")
    try:
        writer = CsvWriter(args.csv) if to_file else LineWriter(sys.stdout)
    except OSError as error:
        raise UsageError(f"--csv {args.csv}: cannot write ({error.strerror or error})") from None
    top = TopImages(args.top) if args.sheet else None
    overlays_written = []
    overlay_names = overlays.OverlayNames()

    def on_results(results, images, outputs):
        writer.write(results)
        if top is not None:
            for result, image in zip(results, images):
                top.add(result, image)
        if args.maps is not None:
            overlays_written.extend(overlays.write_overlays(
                args.maps, results, images, outputs, overlay_names, scales))

    image_scorer.on_results = on_results
    started = time.perf_counter()
    lost_folder = interrupted = False
    try:
        if args.watch:
            watch(image_scorer, args.watch, args.max_images, args.timeout, args.poll_interval)
        else:
            image_scorer.score_files(paths)
    except KeyboardInterrupt:  # the results so far are kept; in --watch mode, the usual stop
        print(f"{PROG}: interrupted", file=sys.stderr)
        interrupted = not args.watch
    except ImageError as error:  # the watched folder went away, or --strict
        print(f"{PROG}: {'error: ' if args.strict else ''}{error} (stopped)", file=sys.stderr)
        lost_folder = True
    finally:
        writer.close()
    print_summary(image_scorer, args, time.perf_counter() - started)
    if to_file:
        print(f"csv: {writer.rows} rows written to {args.csv}")
    if args.maps is not None:
        print(f"maps: {len(overlays_written)} overlays written to {args.maps}")
    if top is not None:
        ranked = top.ranked()
        if ranked:
            try:
                write_sheet(args.sheet, ranked)
            except OSError as error:
                raise UsageError(f"--sheet {args.sheet}: cannot write ({error.strerror or error})") from None
            print(f"sheet: top {len(ranked)} images written to {args.sheet}")
        else:
            print(f"{PROG}: no images scored, {args.sheet} not written", file=sys.stderr)
    if args.strict and lost_folder:
        return 2
    if interrupted:
        return INTERRUPTED
    return 1 if image_scorer.failed or lost_folder else 0


def main(argv=None):
    """The ``gradcon-edge`` command; returns its exit status."""
    try:
        return run(parse_args(argv))
    except UsageError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED
