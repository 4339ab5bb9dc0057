import os
import pickle

import numpy as np
import pytest
from PIL import Image

from labelleak.data import (
    SplitSizes,
    four_way_split,
    load_cifar,
    load_dataset,
    load_digits,
    load_image_folder,
    load_npz,
    load_tabular,
    public_part,
)
from labelleak.errors import DataFileError, InvalidInputError, UnknownNameError


def test_digits_is_bundled_and_model_ready():
    ds = load_digits()
    assert len(ds) == 1797 and ds.n_classes == 10 and ds.input_shape == (1, 8, 8)
    f = ds.features()
    assert f.dtype == np.float32 and f.shape == (1797, 1, 8, 8)
    assert f.min() == 0.0 and f.max() == 1.0


def test_npz_four_key_layout_concatenates_train_and_test(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(
        p,
        x_train=np.zeros((5, 32, 32, 3), np.uint8),
        y_train=np.arange(5) % 2,
        x_test=np.full((3, 32, 32, 3), 255, np.uint8),
        y_test=np.array([0, 1, 1]),
    )
    ds = load_npz(p)
    assert len(ds) == 8 and ds.kind == "image" and ds.input_shape == (3, 32, 32)
    assert ds.features()[5:].min() == 1.0


def test_cifar_npz_with_wrong_class_count_is_rejected(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(
        p,
        x_train=np.zeros((4, 32, 32, 3), np.uint8),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.zeros((2, 32, 32, 3), np.uint8),
        y_test=np.array([0, 1]),
    )
    with pytest.raises(DataFileError, match="expected 10 classes"):
        load_cifar(p)


def test_npz_xy_tabular(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, x=np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]]), y=np.array([0, 1, 2]))
    ds = load_npz(p)
    assert ds.kind == "tabular" and ds.input_shape == (2,)
    np.testing.assert_allclose(ds.features()[:, 0], [0.0, 0.5, 1.0])


@pytest.mark.parametrize("content,match", [(b"not a zip", "corrupt"), (None, "not found")])
def test_npz_missing_or_corrupt(tmp_path, content, match):
    p = tmp_path / "bad.npz"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataFileError, match=match):
        load_npz(p)


def test_npz_wrong_keys(tmp_path):
    p = tmp_path / "k.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(DataFileError, match="expected keys"):
        load_npz(p)


def _write_cifar10_folder(folder, n_per_batch=4):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, n_per_batch)),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)


def test_cifar10_pickle_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10_folder(folder)
    ds = load_dataset("cifar10", folder)
    assert len(ds) == 24 and ds.x.shape == (24, 32, 32, 3) and ds.class_names[3] == "c3"


def test_cifar_pickle_with_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10_folder(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DataFileError, match="refusing to load global"):
        load_cifar(folder)


def test_cifar_missing_batch_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10_folder(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(DataFileError, match="missing CIFAR batch file"):
        load_cifar(folder)


def test_cifar100_folder(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 150), ("test", 50)):
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": list(np.arange(n) % 100)}, fh)
    ds = load_dataset("cifar100", folder)
    assert len(ds) == 200 and ds.n_classes == 100


def test_image_folder(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    ds = load_image_folder(tmp_path, image_size=8)
    assert ds.class_names == ["cat", "dog"] and ds.x.shape == (6, 8, 8, 3)
    assert list(ds.y) == [0, 0, 0, 1, 1, 1]


def test_image_folder_corrupt_image(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / cls / "0.png")
    (tmp_path / "b" / "1.png").write_bytes(b"garbage")
    with pytest.raises(DataFileError, match="corrupt image file"):
        load_image_folder(tmp_path)


def _two_classes(root):
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / cls / "0.png")
    return root


def test_image_folder_refuses_a_decompression_bomb_before_decoding(tmp_path):
    root = _two_classes(tmp_path / "imgs")
    Image.new("1", (5000, 5000)).save(root / "b" / "bomb.png")  # a few KB on disk, 25 M pixels decoded
    assert (root / "b" / "bomb.png").stat().st_size < 100_000
    with pytest.raises(DataFileError, match=r"5000 x 5000 pixels, more than 16777216 \(a decompression bomb\?\)"):
        load_image_folder(root)


def test_image_folder_refuses_a_named_pipe_instead_of_hanging(tmp_path):
    root = _two_classes(tmp_path / "imgs")
    os.mkfifo(root / "a" / "1.png")
    with pytest.raises(DataFileError, match="not a regular file"):
        load_image_folder(root)


def test_image_folder_refuses_symlinks_that_leave_it(tmp_path):
    root = _two_classes(tmp_path / "imgs")
    outside = tmp_path / "secret.png"
    Image.fromarray(np.ones((4, 4, 3), np.uint8)).save(outside)
    (root / "a" / "inside.png").symlink_to(root / "b" / "0.png")  # stays inside: fine
    assert len(load_image_folder(root)) == 3
    (root / "a" / "1.png").symlink_to(outside)
    with pytest.raises(DataFileError, match="a symlink that leaves the image folder"):
        load_image_folder(root)
    (root / "a" / "1.png").unlink()
    (root / "c").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataFileError, match="a symlinked class folder that leaves the image folder"):
        load_image_folder(root)


def test_tabular_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,label\n1,2,yes\n3,4,no\n5,6,yes\n")
    ds = load_tabular(p, label_column="label")
    assert ds.class_names == ["no", "yes"] and list(ds.y) == [1, 0, 1] and ds.x.shape == (3, 2)
    with pytest.raises(DataFileError, match="no label column"):
        load_tabular(p, label_column="nope")
    p.write_text("a,label\nx,1\n")
    with pytest.raises(DataFileError, match="non-numeric"):
        load_tabular(p)


def test_unknown_dataset_and_missing_path():
    with pytest.raises(UnknownNameError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(InvalidInputError, match="needs a path"):
        load_dataset("npz")


def test_split_is_disjoint_deterministic_and_validated():
    sizes = SplitSizes(10, 10, 20, 20)
    a, b = four_way_split(100, sizes, seed=3), four_way_split(100, sizes, seed=3)
    parts = [a.target_train, a.target_test, a.shadow_train, a.shadow_test]
    assert [len(p) for p in parts] == [10, 10, 20, 20]
    assert len(np.unique(np.concatenate(parts))) == 60
    assert all(
        np.array_equal(p, q) for p, q in zip(parts, [b.target_train, b.target_test, b.shadow_train, b.shadow_test])
    )
    assert not np.array_equal(a.target_train, four_way_split(100, sizes, seed=4).target_train)
    with pytest.raises(InvalidInputError, match="need 61 samples .* pool has only 60"):
        four_way_split(60, SplitSizes(10, 11, 20, 20), seed=0)
    with pytest.raises(InvalidInputError, match="non-negative"):
        four_way_split(60, SplitSizes(-1, 1, 0, 0), seed=0)


def test_public_part_lies_outside_every_part_and_every_reserved_member():
    sizes = SplitSizes(10, 10, 20, 20)
    split = four_way_split(200, sizes, seed=3, reserve_train=40)
    public = public_part(200, sizes, 30, seed=3, reserve_train=40)
    # the members a 40-member target of the same seed would have: the public part must miss them too
    larger = four_way_split(200, SplitSizes(40, 10, 20, 20), seed=3, reserve_train=40)
    used = np.concatenate([larger.target_train, split.target_test, split.shadow_train, split.shadow_test])
    assert len(public) == 30 and len(np.unique(public)) == 30
    assert not np.intersect1d(public, used).size and np.isin(split.target_train, larger.target_train).all()
    assert np.array_equal(public, public_part(200, sizes, 30, seed=3, reserve_train=40))
    with pytest.raises(InvalidInputError, match="31 samples asked, but the pool of 120 has only 30"):
        public_part(120, sizes, 31, seed=3, reserve_train=40)
    with pytest.raises(InvalidInputError, match="positive number"):
        public_part(200, sizes, 0, seed=3)
