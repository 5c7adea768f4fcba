"""Every loader on small files written by the test; bad files name the file and the problem."""

import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from gradcon_tf import data
from gradcon_tf.data import DataFileError, cure_tsr
from gradcon_tf.data.challenges import CHALLENGES, LEVELS, apply_challenge


def idx_bytes(array):
    array = np.asarray(array, np.uint8)
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def write_idx_dir(directory, n_train=7, n_test=5, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    os.makedirs(directory, exist_ok=True)
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if compress:
            with gzip.open(os.path.join(directory, name + ".gz"), "wb") as handle:
                handle.write(payload)
        else:
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(payload)
    return {k: np.asarray(v, np.uint8) for k, v in arrays.items()}


# ---------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory_round_trip(tmp_path, compress):
    arrays = write_idx_dir(tmp_path, compress=compress)
    splits = data.load(f"mnist:{tmp_path}")
    np.testing.assert_array_equal(splits["train"].images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(splits["train"].labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(splits["test"].images[..., 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(splits["test"].labels, arrays["t10k-labels-idx1-ubyte"])
    assert splits["train"].images.shape == (7, 28, 28, 1)
    assert (
        data.load(f"fashion_mnist:{tmp_path}")["test"].labels.tolist()
        == splits["test"].labels.tolist()
    )


def test_idx_truncated_file_names_file(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28)))[:-10])
    with pytest.raises(DataFileError, match=rf"{path}.*truncated"):
        data.read_idx(path)


def test_idx_header_lies_about_count(tmp_path):
    payload = bytearray(idx_bytes(np.zeros((4, 28, 28))))
    payload[4:8] = struct.pack(">I", 3)  # says 3 images, holds 4
    path = tmp_path / "lying-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(DataFileError, match=rf"{path}.*\(3, 28, 28\).*trailing"):
        data.read_idx(path)


def test_idx_truncated_gzip_and_bad_magic(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28))))[:30])
    with pytest.raises(DataFileError, match=rf"{path}.*gzip"):
        data.read_idx(path)
    path = tmp_path / "png-not-idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    with pytest.raises(DataFileError, match=rf"{path}.*not an IDX file"):
        data.read_idx(path)


def test_idx_count_mismatch_between_images_and_labels(tmp_path):
    write_idx_dir(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4)))
    with pytest.raises(DataFileError, match="t10k-images.*5 images.*t10k-labels.*4 labels"):
        data.load(f"mnist:{tmp_path}")


def test_idx_missing_file(tmp_path):
    write_idx_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte"):
        data.load(f"mnist:{tmp_path}")


# ---------------------------------------------------------------------- CIFAR-10


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    rows = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
    payload = pickle.dumps(
        {b"batch_label": b"x", b"labels": labels, b"data": rows, b"filenames": [b"f"] * n},
        protocol=2,
    )
    return payload, images, labels


def write_cifar(directory, as_tarball=False):
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {"train": ([], []), "test": ([], [])}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        payload, images, labels = cifar_batch(3, seed=i)
        (folder / name).write_bytes(payload)
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(images)
        expected[split][1].extend(labels)
    if as_tarball:
        tarball = directory / "cifar-10-python.tar.gz"
        with tarfile.open(tarball, "w:gz") as archive:
            archive.add(folder, arcname="cifar-10-batches-py")
        return tarball, expected
    return folder, expected


@pytest.mark.parametrize("layout", ["folder", "parent", "tarball", "tarball-parent"])
def test_cifar10_layouts(tmp_path, layout):
    path, expected = write_cifar(tmp_path, as_tarball=layout.startswith("tarball"))
    if layout.endswith("parent"):
        path = tmp_path
    if layout == "tarball-parent":
        import shutil

        shutil.rmtree(tmp_path / "cifar-10-batches-py")
    splits = data.load(f"cifar10:{path}")
    for split in ("train", "test"):
        np.testing.assert_array_equal(splits[split].images, np.concatenate(expected[split][0]))
        assert splits[split].labels.tolist() == expected[split][1]
    assert splits["train"].images.shape == (15, 32, 32, 3)


def test_cifar10_bad_batches(tmp_path):
    folder, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:500])
    with pytest.raises(DataFileError, match="data_batch_3.*not a readable CIFAR-10 batch"):
        data.load(f"cifar10:{folder}")
    # A pickle that would run code is refused, not executed.
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(DataFileError, match="data_batch_3.*refusing"):
        data.load(f"cifar10:{folder}")
    os.remove(folder / "data_batch_3")
    with pytest.raises(DataFileError, match="data_batch_3.*no such file"):
        data.load(f"cifar10:{folder}")


def test_cifar10_wrong_shape(tmp_path):
    folder, _ = write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(DataFileError, match=r"test_batch.*\(N, 3072\)"):
        data.load(f"cifar10:{folder}")


# ---------------------------------------------------------------------- image folders


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_split_and_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for name in ("cat", "ant", "bee"):
        for i in range(5):
            array = rng.integers(0, 256, (12, 10), dtype=np.uint8)
            write_png(tmp_path / name / f"{i}.png", array)
            written[(name, i)] = array
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    splits = data.load(f"folder:{tmp_path}")
    assert splits["class_names"] == ["ant", "bee", "cat"]
    assert splits["train"].images.shape[1:] == (12, 10, 1)
    assert len(splits["train"]) == 12 and len(splits["test"]) == 3  # 20% of 5 per class
    assert sorted(splits["test"].labels.tolist()) == [0, 1, 2]
    every = np.concatenate([splits["train"].images, splits["test"].images])[..., 0]
    for array in written.values():
        assert any(np.array_equal(array, image) for image in every)


def test_image_folder_train_test_rgb(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for name in ("a", "b"):
            for i in range(n):
                write_png(
                    tmp_path / split / name / f"{i}.png",
                    rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                )
    splits = data.load_image_folder(tmp_path)
    assert splits["train"].images.shape == (6, 8, 8, 3)
    assert splits["test"].labels.tolist() == [0, 0, 1, 1]


def test_image_folder_errors(tmp_path):
    write_png(tmp_path / "a" / "0.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "a" / "1.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(DataFileError, match=r"1\.png.*8x9.*image_size"):
        data.load(f"folder:{tmp_path}")
    assert data.load_image_folder(tmp_path, image_size=(6, 6), test_fraction=0.5)[
        "train"
    ].images.shape == (1, 6, 6, 1)
    (tmp_path / "a" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFileError, match=r"2\.png.*cannot decode image"):
        data.load(f"folder:{tmp_path}")
    with pytest.raises(DataFileError, match="no such directory"):
        data.load(f"folder:{tmp_path / 'missing'}")


# ---------------------------------------------------------------------- numpy arrays, digits


def test_npz_and_arrays(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6),
        x_test=rng.random((4, 28, 28, 1)).astype(np.float32),
        y_test=np.arange(4),
    )
    np.savez(tmp_path / "d.npz", **arrays)
    splits = data.load(f"npz:{tmp_path / 'd.npz'}")
    np.testing.assert_array_equal(splits["train"].images[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(splits["test"].images, arrays["x_test"])
    assert data.from_arrays(**arrays)["test"].labels.tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "partial.npz", x_train=arrays["x_train"])
    with pytest.raises(DataFileError, match=r"partial\.npz.*missing arrays"):
        data.load(f"npz:{tmp_path / 'partial.npz'}")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:100])
    with pytest.raises(DataFileError, match=r"cut\.npz"):
        data.load(f"npz:{tmp_path / 'cut.npz'}")
    np.savez(tmp_path / "mismatch.npz", **{**arrays, "y_test": np.arange(3)})
    with pytest.raises(DataFileError, match=r"mismatch\.npz.*4 images but 3 labels"):
        data.load(f"npz:{tmp_path / 'mismatch.npz'}")


def test_digits_split_is_stratified_and_disjoint():
    splits = data.load("digits")
    assert len(splits["train"]) + len(splits["test"]) == 1797
    counts = np.bincount(splits["test"].labels)
    totals = counts + np.bincount(splits["train"].labels)
    np.testing.assert_array_equal(counts, totals // 3)


def test_unknown_spec():
    with pytest.raises(ValueError, match="unknown dataset spec"):
        data.load("imagenet:/x")


# ---------------------------------------------------------------------- TFDS (mock data only)


def test_tfds_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        splits = data.load(f"tfds:mnist:{tmp_path}")
        assert splits["train"].images.shape == (6, 28, 28, 1)
        assert splits["train"].images.dtype == np.uint8
        assert splits["test"].labels.shape == (6,)
        cifar = data.load("tfds:cifar10")
        assert cifar["train"].images.shape == (6, 32, 32, 3)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or written


def test_tfds_not_prepared_says_so(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataFileError, match=rf"tfds:mnist: not prepared in {tmp_path}.*tfds build"):
        data.load(f"tfds:mnist:{tmp_path}")


# ---------------------------------------------------------------------- CURE-TSR and challenges


def write_cure_tsr(root, n_signs=3, size=(20, 18)):
    """A tiny CURE-TSR tree: ChallengeFree plus two challenge folders, real sequence."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, ctype, level in (("ChallengeFree", 0, 0), ("Snow-3", 11, 3), ("Haze-1", 12, 1)):
        (root / folder).mkdir(parents=True)
        for index in range(n_signs):
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(array).save(
                root / folder / f"01_{index + 1:02d}_{ctype:02d}_{level:02d}_{index:04d}.bmp"
            )


def test_cure_tsr_loader(tmp_path):
    write_cure_tsr(tmp_path)
    dataset = cure_tsr.load_cure_tsr(tmp_path, image_size=16)
    assert dataset.images.shape == (9, 16, 16, 3)
    assert len(dataset.challenge_free()) == 3
    snow = dataset.condition("snow", 3)
    assert len(snow) == 3 and set(snow.challenge_level) == {3} and set(snow.challenge_type) == {11}
    assert sorted(snow.index.tolist()) == sorted(dataset.challenge_free().index.tolist())
    only_haze = cure_tsr.load_cure_tsr(tmp_path, challenges=["haze"])
    assert sorted(set(only_haze.challenge_type.tolist())) == [0, 12]
    (tmp_path / "Snow-3" / "01_01_11_03_0099.bmp").write_bytes(b"BM broken")
    with pytest.raises(DataFileError, match="01_01_11_03_0099.bmp.*cannot decode"):
        cure_tsr.load_cure_tsr(tmp_path)
    (tmp_path / "Snow-3" / "snowy.bmp").write_bytes(b"BM")
    with pytest.raises(DataFileError, match="snowy.bmp.*not a CURE-TSR file name"):
        cure_tsr.load_cure_tsr(tmp_path)


@pytest.mark.parametrize("challenge", sorted(CHALLENGES))
def test_challenges_shape_range_determinism_and_strength(challenge):
    rng = np.random.default_rng(0)
    images = rng.integers(30, 200, (3, 28, 28, 3), dtype=np.uint8)
    if challenge == "decolorization":
        images[..., 0] = 220  # saturated colour, so decolorization changes it
    outputs = [apply_challenge(images, challenge, level, seed=1) for level in LEVELS]
    for out in outputs:
        assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outputs[2], apply_challenge(images, challenge, 3, seed=1))
    distances = [np.abs(o.astype(float) - images).mean() for o in outputs]
    assert distances[0] > 0.5, distances
    assert distances[-1] > distances[0], distances  # level 5 is stronger than level 1
    floats = apply_challenge(images / 255.0, challenge, 2, seed=1)
    assert floats.dtype == np.float32 and 0.0 <= floats.min() and floats.max() <= 1.0


def test_challenge_arguments():
    with pytest.raises(ValueError, match="unknown challenge"):
        apply_challenge(np.zeros((1, 4, 4, 1)), "fog", 1)
    with pytest.raises(ValueError, match="level"):
        apply_challenge(np.zeros((1, 4, 4, 1)), "snow", 6)
