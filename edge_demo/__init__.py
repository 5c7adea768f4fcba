"""gradcon-edge: score images on a device with an exported GradCon LiteRT model.

Needs only numpy, Pillow and ai-edge-litert; nothing here imports TensorFlow, Keras or gradcon_tf.
Install this folder on its own, as the import package ``gradcon_edge`` with the command
``gradcon-edge``::

    pip install ./edge_demo
    gradcon-edge --model gradcon_f32.tflite IMAGES... [--csv scores.csv] [--sheet top.png --top 16]
    gradcon-edge --model gradcon_f32.tflite --watch INBOX --max-images 100 --timeout 60

From a checkout of the repository, ``python -m edge_demo ...`` runs the same command without
installing. See ``README.md`` next to this file.
"""

__version__ = "0.1.0"  # as edge_demo/pyproject.toml
