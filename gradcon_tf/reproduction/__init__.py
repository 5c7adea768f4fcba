"""``gradcon reproduce``: the paper's experiments, resumable, with their reports.

``store`` keeps the finished runs, ``runner`` trains and scores them, ``summary`` aggregates
them, ``report`` writes the Markdown and ``figures`` the PNG figures; ``references.json`` holds
the paper's and the release's numbers.
"""
