"""``gradcon export``: the SavedModel (TF Serving's layout) and the LiteRT models of a saved
model."""

import os

from gradcon_tf.cli import common

COMMAND = "export"
HELP = "write the SavedModel (TF Serving) and LiteRT models"


def add_arguments(parser):
    parser.add_argument("model", help="a .keras file written by gradcon train")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--version", type=common.positive_int, default=1, help="SavedModel version")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    parser.add_argument(
        "--targets", default="f32,f16,dynamic_int8",
        help="comma-separated LiteRT variants (f32, f16, dynamic_int8), or 'none'",
    )
    parser.add_argument(
        "--representative", metavar="NPY",
        help=".npy of normal images (N, H, W, C) to calibrate an extra full-int8 model",
    )


def check(args):
    """Before TensorFlow: the model file, --representative, and an --out folder without this
    --version."""
    import errno

    from gradcon_tf import model_files

    model_files.check_model_file(args.model)
    if args.representative and not os.path.isfile(args.representative):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", args.representative)
    common.check_output(args, _check_output)


def _check_output(args):
    from gradcon_tf import _files as files

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError("exists and is not a folder (the export folder)")
    version = os.path.join(args.out, "saved_model", str(args.version))
    if os.path.exists(version):
        raise ValueError(f"{version} exists; pick another --version or remove it")
    files.check_writable(args.out)


def run(args):
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
