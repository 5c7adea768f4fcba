"""What ``gradcon`` and ``gradcon-edge`` share: numpy, Pillow and the standard library only.

This folder is the one copy in the repository. It is installed twice, as real files (no link,
no build hook): as ``gradcon_edge.portable`` by ``edge_demo/pyproject.toml`` (a sub-folder of the
package) and as ``gradcon_tf.portable`` by the top-level ``pyproject.toml`` (``package-dir``, as
``gradcon_tf.export`` comes from ``export/``). Modules here import only each other, relatively,
and nothing of TensorFlow, Keras, ``gradcon_tf`` or ``gradcon_edge``.

* :mod:`.image_files`: finding, decoding, converting and resizing image files;
* :mod:`.results`: the CSV both commands write;
* :mod:`.overlays`: the anomaly-map overlay PNGs;
* :mod:`.signatures`: the exported signatures' names;
* :mod:`.native_stderr`: silencing native libraries' log lines.
"""
