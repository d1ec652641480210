"""demo/cifar_like.py writes CIFAR-10's own file layouts, readable the ways real course code reads them."""
import pickle

import numpy as np

from demo.cifar_like import BATCHES, LABEL_NAMES, cifar_like_images, write_cifar_npy, write_cifar_python


def test_python_batches_read_like_the_real_files(tmp_path):
    folder = write_cifar_python(tmp_path, n_train=50, n_test=20, seed=3)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"data_batch_{i}" for i in range(1, BATCHES + 1)] + ["test_batch", "batches.meta"])

    # Course readers: pickle.load(f, encoding='bytes') and bytes keys.
    rows, labels = [], []
    for i in range(1, BATCHES + 1):
        with open(folder / f"data_batch_{i}", "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
        rows.append(batch[b"data"])
        labels += batch[b"labels"]
    assert sum(len(r) for r in rows) == 50 and len(labels) == 50

    # torchvision's reader: encoding='latin1' and str keys, same values.
    with open(folder / "test_batch", "rb") as f:
        as_str = pickle.load(f, encoding="latin1")
    with open(folder / "test_batch", "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    assert np.array_equal(as_str["data"], as_bytes[b"data"]) and as_str["labels"] == as_bytes[b"labels"]
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"] == LABEL_NAMES

    # Rows are channel-first: the first 1024 values are the red plane of the NHWC image.
    images, image_labels = cifar_like_images(70, seed=3)
    assert np.array_equal(rows[0][0].reshape(3, 32, 32), images[0].transpose(2, 0, 1))
    assert labels == image_labels[:50].tolist()


def test_npy_layout(tmp_path):
    write_cifar_npy(tmp_path, n_train=30, n_test=10)
    x_train, y_train = np.load(tmp_path / "x_train.npy"), np.load(tmp_path / "y_train.npy")
    assert x_train.shape == (30, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (30, 1) and np.load(tmp_path / "x_test.npy").shape == (10, 32, 32, 3)


def test_images_vary_and_every_class_appears():
    images, labels = cifar_like_images(500, seed=0)
    assert set(labels.tolist()) == set(range(10))
    assert images.std() > 30 and len({images[i].tobytes() for i in range(20)}) == 20
