"""One result per scored image, and where results go: tab-separated lines or a CSV file."""

import csv
import math
from dataclasses import dataclass

CSV_COLUMNS = ("path", "score", "recon", "grad_loss", "is_anomaly", "threshold", "p_value")


@dataclass(frozen=True)
class Result:
    path: str
    score: float
    recon: float
    grad_loss: float
    threshold: float  # NaN: the model has none and no --threshold was given
    p_value: float = math.nan  # NaN: the model was not calibrated (or exported before p-values)

    @property
    def is_anomaly(self):
        """``score > threshold``; None without a threshold."""
        return None if math.isnan(self.threshold) else self.score > self.threshold

    @property
    def decision(self):
        return {True: "ANOMALY", False: "normal", None: "no-threshold"}[self.is_anomaly]


class LineWriter:
    """``PATH<TAB>score=S<TAB>DECISION`` per image, flushed as it comes."""

    def __init__(self, stream):
        self.stream = stream
        self.rows = 0

    def write(self, results):
        for result in results:
            print(f"{result.path}\tscore={result.score:.6f}\t{result.decision}", file=self.stream, flush=True)
        self.rows += len(results)

    def close(self):
        pass


class CsvWriter:
    """A CSV file with :data:`CSV_COLUMNS`, flushed after every batch (watch mode can tail it).

    Floats have 9 significant digits (float32 round trip); ``is_anomaly`` is ``true``/``false``,
    empty (as is ``threshold``) without a threshold; ``p_value`` is empty for an uncalibrated model.
    """

    def __init__(self, path):
        self.path = path
        self.file = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow(CSV_COLUMNS)
        self.rows = 0

    def write(self, results):
        for result in results:
            anomaly = "" if result.is_anomaly is None else str(result.is_anomaly).lower()
            threshold = "" if math.isnan(result.threshold) else f"{result.threshold:.9g}"
            p_value = "" if math.isnan(result.p_value) else f"{result.p_value:.9g}"
            numbers = (f"{value:.9g}" for value in (result.score, result.recon, result.grad_loss))
            self.writer.writerow((result.path, *numbers, anomaly, threshold, p_value))
        self.file.flush()
        self.rows += len(results)

    def close(self):
        self.file.close()
