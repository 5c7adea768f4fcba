"""``gradcon sample-images``: a labelled dataset's test-split images as PNG files."""

from gradcon_tf.cli import common, training_options

COMMAND = "sample-images"
HELP = "write test-split images as PNG files"


def add_arguments(parser):
    parser.add_argument("--data", required=True, help=training_options.DATA_HELP)
    parser.add_argument("--inlier-class", type=int, default=0, help="the normal class")
    parser.add_argument("--count", type=common.positive_int, default=16, help="how many images")
    parser.add_argument("--seed", type=common.seed, default=0,
                        help="the split's seed (as in training)")
    parser.add_argument("--out", required=True, help="folder to write the PNG files to")


def check(args):
    from gradcon_tf import _files as files

    training_options.check_data(args)
    common.check_output(args, lambda args: files.check_writable(args.out))


def run(args):
    from gradcon_tf.data.sample_images import write_test_images

    count = write_test_images(args.data, args.inlier_class, args.count, args.out, seed=args.seed)
    print(f"wrote {count} images to {args.out}")
    return 0
