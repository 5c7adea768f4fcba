"""``python -m gradcon_tf.cli``: the ``gradcon`` command."""

import sys

from gradcon_tf.cli import main

sys.exit(main())
