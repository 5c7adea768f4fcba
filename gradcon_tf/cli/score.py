"""``gradcon score``: score images with a saved model and write a CSV (and overlays)."""

import sys

from gradcon_tf.cli import common, images
from gradcon_tf.cli.common import UserError

COMMAND = "score"
HELP = "score images with a saved model, write a CSV"


def add_arguments(parser):
    from gradcon_tf.portable.overlays import MAP_SCALE_CHOICES

    parser.add_argument("--model", required=True, help="a .keras file written by gradcon train")
    parser.add_argument(
        "--images", required=True,
        help=".npy array (N, H, W, C), IDX file, or PNG/JPEG images: a file, a folder or a "
        "quoted glob ('shots/*.png'); image files are resized to the model's input size",
    )
    parser.add_argument("--batch-size", type=common.positive_int, default=256,
                        help="images per batch")
    parser.add_argument("--out", help="CSV file to write (default, or -: stdout)")
    parser.add_argument(
        "--maps", metavar="DIR",
        help="also write one PNG per image to DIR, named after it: the image, its anomaly maps "
        "(reconstruction error, gradient, GradCon) with colour bars and the GradCon map over the "
        "image, with score and p-value",
    )
    parser.add_argument(
        "--map-scale", choices=MAP_SCALE_CHOICES, default="image",
        help="--maps: each map on its own scale (its 99th percentile), or every map on the "
        "calibration images' (stored by calibrate), so that maps compare across images",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="stop at the first image file that cannot be read (exit 2, nothing written); "
        "default: skip it, name it on stderr, score the rest and exit 1",
    )


def check(args):
    """Before TensorFlow: the model file, the images (all decodable with --strict), --maps."""
    from gradcon_tf import _files as files
    from gradcon_tf import model_files

    model_files.check_model_file(args.model)
    images.check_images_spec(args.images)
    if args.map_scale != "image" and not args.maps:
        raise UserError("--map-scale applies only with --maps DIR")
    if args.strict and images.is_image_spec(args.images):
        images.check_images_readable(args.images)
    if args.maps and images.is_image_spec(args.images):
        from gradcon_tf.portable.overlays import check_overlay_folder

        check_overlay_folder(args.maps, images.image_paths(args.images))
    if args.out == "-":
        args.out = None  # stdout, as without --out
    common.check_output(args, lambda args: files.check_writable(args.out))


def run(args):
    """Exit status 0, or 1 when some image files could not be read (named on stderr)."""
    import gradcon_tf
    from gradcon_tf.portable import results

    model = gradcon_tf.load_model(args.model)
    scales = None
    if args.map_scale == "calibration":
        scales = model.map_scales
        if scales is None:
            raise UserError(
                f"--map-scale calibration: {args.model} has no map scales (calibrated before they "
                "were kept); calibrate it again (GradCon.calibrate) or use --map-scale image")
    pixels, names, unreadable = images.load_images(args.images, model.image_shape, args.strict)
    rows = _score(args, model, pixels, names, scales) if len(pixels) else []
    first_column = "index" if names is None else "path"
    common.write_text_output(results.csv_text(rows, first_column), args.out, f"{len(rows)} scores")
    if args.maps:
        print(f"{len(rows)} overlays written to {args.maps}", file=sys.stderr)
    if unreadable:
        print(f"gradcon: {len(unreadable)} of {len(unreadable) + len(rows)} image files could not "
              "be read (named above); the others were scored", file=sys.stderr)
        return 1
    return 0


def _score(args, model, pixels, names, scales):
    """The CSV rows of ``pixels`` scored batch by batch, the overlays written with --maps."""
    import numpy as np

    from gradcon_tf.portable import overlays, results
    from gradcon_tf.preprocessing import check_images

    pixels = check_images(pixels, model.image_shape, name=args.images)
    names = names if names is not None else [str(i) for i in range(len(pixels))]
    if args.maps:
        common.make_folder(args.maps, "--maps")
    overlay_names = overlays.OverlayNames()
    shown = pixels if pixels.dtype == np.uint8 else np.round(pixels * 255).astype(np.uint8)
    rows = []
    for start in range(0, len(pixels), args.batch_size):
        batch = slice(start, start + args.batch_size)
        outputs = model.score(pixels[batch], batch_size=args.batch_size, maps=bool(args.maps))
        rows += results.results_from_outputs(names[batch], outputs)
        if args.maps:
            overlays.write_overlays(args.maps, rows[batch], shown[batch], outputs, overlay_names,
                                    scales)
    return rows
