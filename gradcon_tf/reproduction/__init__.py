"""``gradcon reproduce``: the paper's experiments, resumable, with their reports.

``protocols`` holds the experiments (one module each, found by name), ``runner`` runs them,
``training`` trains one run and builds its record, ``store`` keeps the finished runs,
``summary`` and ``report`` hold what every protocol's summary and README are made of,
``figures`` writes the PNG figures and ``provenance`` says where a result comes from;
``references.json`` holds the paper's and the release's numbers.
"""
