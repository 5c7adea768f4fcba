"""Deploy a trained GradCon model: SavedModel for TF Serving and builtin-only LiteRT models.

Run ``python -m export MODEL.keras --out DIR`` from the repository root. This package is not
installed into site-packages (``pyproject.toml`` packages ``gradcon_tf*`` only).
"""
