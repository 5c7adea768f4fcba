"""Deploy a trained GradCon model: a SavedModel for TF Serving and builtin-only LiteRT models.

Installed as ``gradcon_tf.export`` (the repository keeps it in the top-level ``export/`` folder);
the command is ``gradcon export MODEL.keras --out DIR``. ``docs/deploy.md`` describes the files.
"""

from .exporter import MANIFEST, export_model, read_manifest

__all__ = ["MANIFEST", "export_model", "read_manifest"]
