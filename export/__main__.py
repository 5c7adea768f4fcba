"""``python -m export MODEL.keras --out DIR``: SavedModel (TF Serving) and LiteRT variants."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("model", help="a trained GradCon saved as .keras")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    parser.add_argument(
        "--threshold", type=float, default=None, help="decision threshold (default: the model's)"
    )
    parser.add_argument(
        "--targets",
        default="f32,f16,dynamic_int8",
        help="comma-separated LiteRT variants, or 'none' for the SavedModel only",
    )
    parser.add_argument(
        "--representative",
        help=".npy of normal images (N, H, W, C) to calibrate an extra full-int8 model",
    )
    args = parser.parse_args(argv)

    import numpy as np

    from export.exporter import export_model

    targets = () if args.targets == "none" else tuple(t for t in args.targets.split(",") if t)
    representative = np.load(args.representative) if args.representative else None
    try:
        manifest = export_model(
            args.model,
            args.out,
            version=args.version,
            threshold=args.threshold,
            targets=targets,
            representative_images=representative,
        )
    except (ValueError, TypeError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"SavedModel: {manifest['saved_model']}")
    for tag, info in manifest["litert"].items():
        print(f"LiteRT {tag}: {info['path']} ({info['bytes'] / 1024:.0f} KiB, builtin ops only)")
    if manifest["threshold"] is None:
        print("threshold: not set (NaN): is_anomaly is all False; calibrate the model first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
