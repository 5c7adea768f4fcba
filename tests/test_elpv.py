"""The ELPV one-class split on a small fake copy of the dataset's layout (labels.csv + images)."""

import numpy as np
import pytest
from PIL import Image

from gradcon_tf.data import elpv


@pytest.fixture()
def fake_elpv(tmp_path):
    """24 cells: 8 functional mono, 8 functional poly, then defects of each probability."""
    (tmp_path / "images").mkdir()
    rows = [(0.0, "mono")] * 8 + [(0.0, "poly")] * 8
    rows += [(p, t) for p in (1 / 3, 2 / 3, 1.0) for t in ("mono",)] + [(1.0, "poly")] * 2
    rows += [(2 / 3, "poly"), (1 / 3, "poly"), (1.0, "mono")]
    lines = []
    for index, (probability, kind) in enumerate(rows):
        name = f"images/cell{index:04d}.png"
        Image.fromarray(np.full((30, 30), index, np.uint8)).save(tmp_path / name)
        lines.append(f"{name} {probability} {kind}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return elpv.load_elpv(size=10, labels_csv=str(tmp_path / "labels.csv")), rows


def test_cells_load_with_their_labels(fake_elpv):
    cells, rows = fake_elpv
    assert cells.images.shape == (len(rows), 10, 10, 1) and cells.images.dtype == np.uint8
    np.testing.assert_allclose(cells.defect_probability, [p for p, _ in rows])
    assert list(cells.module_type) == [t for _, t in rows]


@pytest.mark.parametrize("module_type", ["mono", "poly", "both"])
@pytest.mark.parametrize("defective", [">=2/3", ">0"])
def test_split_trains_on_functional_cells_and_tests_on_held_out_and_defective(fake_elpv, module_type, defective):
    cells, rows = fake_elpv
    split = elpv.elpv_one_class_split(cells, module_type, seed=3, defective=defective)
    index = {int(image[0, 0, 0]): i for i, image in enumerate(cells.images)}  # pixel value = row

    def rows_of(images):
        return [index[int(image[0, 0, 0])] for image in images]

    kinds = {"mono", "poly"} if module_type == "both" else {module_type}
    functional = [i for i, (p, t) in enumerate(rows) if p == 0 and t in kinds]
    limit = 2 / 3 - 1e-9 if defective == ">=2/3" else 0
    defects = [i for i, (p, t) in enumerate(rows) if p > limit and t in kinds]
    trained, validation, test = rows_of(split.train), rows_of(split.validation), rows_of(split.test)
    held_out = [i for i, bad in zip(test, split.test_is_anomaly) if not bad]
    assert sorted(trained + validation + held_out) == functional  # each functional cell once
    assert len(held_out) == round(0.25 * len(functional))
    assert sorted(i for i, bad in zip(test, split.test_is_anomaly) if bad) == defects
    same = elpv.elpv_one_class_split(cells, module_type, seed=3, defective=defective)
    np.testing.assert_array_equal(same.test, split.test)  # seeded
