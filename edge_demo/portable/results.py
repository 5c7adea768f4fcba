"""Results out: one :class:`Result` per scored image, as CSV rows or tab-separated lines.

The one CSV format of ``gradcon score`` and ``gradcon-edge``: columns :data:`CSV_COLUMNS`;
floats with 9 significant digits (a float32 round trip); ``is_anomaly`` ``true`` / ``false``,
empty without a threshold; ``p_value`` empty for a model never calibrated.
"""

import csv
import io
import math
from dataclasses import dataclass
from typing import Optional

CSV_COLUMNS = ("path", "score", "recon", "grad_loss", "is_anomaly", "p_value")


@dataclass(frozen=True)
class Result:
    path: str
    score: float
    recon: float
    grad_loss: float
    is_anomaly: Optional[bool]  # None: no threshold
    p_value: float = math.nan  # NaN: the model was not calibrated (or exported before p-values)

    @property
    def decision(self):
        return {True: "ANOMALY", False: "normal", None: "no-threshold"}[self.is_anomaly]

    def csv_row(self):
        anomaly = "" if self.is_anomaly is None else str(bool(self.is_anomaly)).lower()
        p_value = "" if math.isnan(self.p_value) else f"{self.p_value:.9g}"
        numbers = (f"{value:.9g}" for value in (self.score, self.recon, self.grad_loss))
        return (self.path, *numbers, anomaly, p_value)


def results_from_outputs(names, outputs, is_anomaly=None):
    """:class:`Result` per name from a scorer's outputs ({"score", "recon", "grad_loss",
    and "is_anomaly" / "p_value" where the model has them}); ``is_anomaly`` overrides theirs."""
    if is_anomaly is None:
        is_anomaly = outputs.get("is_anomaly")
    return [
        Result(
            name,
            float(outputs["score"][i]),
            float(outputs["recon"][i]),
            float(outputs["grad_loss"][i]),
            None if is_anomaly is None else bool(is_anomaly[i]),
            float(outputs["p_value"][i]) if "p_value" in outputs else math.nan,
        )
        for i, name in enumerate(names)
    ]


def csv_text(results, first_column="path"):
    """The CSV of ``results``, header included (``first_column``: ``index`` for arrays)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow((first_column, *CSV_COLUMNS[1:]))
    writer.writerows(result.csv_row() for result in results)
    return text.getvalue()


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
    """A CSV file of :data:`CSV_COLUMNS`, flushed after every batch (watch mode can tail it)."""

    def __init__(self, path):
        self.path = path
        self.file = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS)
        self.rows = 0

    def write(self, results):
        self.writer.writerows(result.csv_row() for result in results)
        self.file.flush()
        self.rows += len(results)

    def close(self):
        self.file.close()
