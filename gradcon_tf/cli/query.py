"""``gradcon query``: score images with a model served by TF Serving (its REST API)."""

import errno
import os

COMMAND = "query"
HELP = "score images with a model served by TF Serving (REST)"


def add_arguments(parser):
    parser.add_argument("images", help=".npy of (N, H, W, C) images (uint8 or float in [0, 1])")
    parser.add_argument("--url", default="http://localhost:8501", help="TF Serving's REST address")
    parser.add_argument("--model", default="gradcon", help="the model name TF Serving serves")


def check(args):
    if not os.path.isfile(args.images):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", args.images)


def run(args):
    import numpy as np

    from gradcon_tf.export import serving_client

    outputs = serving_client.predict(np.load(args.images), url=args.url, model=args.model)
    for index, (score, anomalous) in enumerate(zip(outputs["score"], outputs["is_anomaly"])):
        print(f"{index}\tscore={score:.6f}\t{'ANOMALY' if anomalous else 'normal'}")
    return 0
