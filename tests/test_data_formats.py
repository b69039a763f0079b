"""The format loaders on small files written here in each real format, the
error lines for missing or corrupt data, and the real MNIST when it is there.

No test touches the network: ACAI_OFFLINE=1 is set for all of them, and the
download tests use file:// URLs.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from acai.core.data import DataError, get_source
from acai.core.data import celeba, cifar10, download, folder, mnist, svhn

REAL_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("ACAI_OFFLINE", "1")


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- MNIST -------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 20, n_test: int = 10, compress: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if compress:
            (root / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (root / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_padding_and_labels(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    splits = mnist.load(tmp_path)
    assert splits.train_images.shape == (20, 1, 32, 32) and splits.test_images.shape == (10, 1, 32, 32)
    assert splits.train_images.dtype == np.uint8 and splits.train_labels.dtype == np.int64
    assert splits.num_classes == 10
    np.testing.assert_array_equal(splits.train_images[:, 0, 2:30, 2:30], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(splits.test_labels, arrays["t10k-labels-idx1-ubyte"])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (splits.train_images[:, 0, border] == 0).all()  # 0 is -1 after x·2/255 - 1 (SPEC 6)


def _corrupt(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncated_gz":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bad_gzip":
        path.write_bytes(data[:10] + bytes(len(data) - 10))
    elif kind == "truncated_idx":
        path.write_bytes(gzip.compress(gzip.decompress(data)[:-5]))
    elif kind == "bad_magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x0d" + gzip.decompress(data)[3:]))


@pytest.mark.parametrize("kind", ["truncated_gz", "bad_gzip", "truncated_idx", "bad_magic"])
def test_mnist_corrupt_file_names_the_file(tmp_path, kind):
    write_mnist(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    _corrupt(bad, kind)
    with pytest.raises(DataError) as error:
        mnist.load(tmp_path)
    assert str(bad) in _one_line(error)


def test_mnist_labels_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DataError, match="7 labels for 20 images"):
        mnist.load(tmp_path)


def test_mnist_official_size_with_wrong_content_fails_checksum(tmp_path):
    write_mnist(tmp_path)
    # Exactly the official t10k-labels size, but not its content.
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(10000, np.uint8))))
    with pytest.raises(DataError, match="checksum mismatch") as error:
        mnist.load(tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(error.value)


def test_mnist_offline_error_says_what_to_put_where(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as error:
        mnist.load(tmp_path)
    message = _one_line(error)
    assert "train-labels-idx1-ubyte.gz" in message and "train-images" not in message
    assert str(tmp_path.absolute()) in message and mnist.URL in message


# --- downloads -----------------------------------------------------------------

def test_cifar10_offline_error_via_get_source(tmp_path):
    with pytest.raises(DataError) as error:
        get_source("cifar10", data_dir=tmp_path)
    message = _one_line(error)
    assert "cifar-10-python.tar.gz" in message
    assert str((tmp_path / "cifar10").absolute()) in message
    assert cifar10.URL in message and "cifar-10-batches-py" in message
    assert not (tmp_path / "cifar10").exists()  # offline: nothing created, nothing fetched


def test_celeba_missing_points_to_official_page(tmp_path):
    with pytest.raises(DataError) as error:
        celeba.load(tmp_path)
    message = _one_line(error)
    assert "img_align_celeba.zip" in message and str(tmp_path.absolute()) in message
    assert celeba.HOMEPAGE in message


def test_fetch_verifies_checksum_and_leaves_nothing_behind(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(DataError, match="checksum mismatch") as error:
        download.fetch(src.as_uri(), dest, md5="0" * 32)
    assert str(dest) in str(error.value)
    assert list(dest.parent.iterdir()) == []  # no file, no temporary
    download.fetch(src.as_uri(), dest, md5=download.md5sum(src))
    assert dest.read_bytes() == b"payload"


def test_ensure_files_downloads_only_when_allowed(tmp_path, monkeypatch):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"abc")
    files = [("local.bin", src.as_uri(), download.md5sum(src))]
    root = tmp_path / "root"
    with pytest.raises(DataError, match="ACAI_OFFLINE"):
        download.ensure_files(root, files)
    assert not (root / "local.bin").exists()
    monkeypatch.delenv("ACAI_OFFLINE")
    assert download.ensure_files(root, files) == [root / "local.bin"]
    assert (root / "local.bin").read_bytes() == b"abc"
    # An unreachable source becomes one DataError line, naming file and folder.
    with pytest.raises(DataError, match="download failed") as error:
        download.ensure_files(root, [("other.bin", (tmp_path / "absent").as_uri(), None)])
    assert "other.bin" in _one_line(error) and str(root.absolute()) in str(error.value)


# --- SVHN ----------------------------------------------------------------------

def write_svhn_mat(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 meaning digit 0
    savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_layout_labels_and_cache(tmp_path):
    train_x, train_y = write_svhn_mat(tmp_path / "train_32x32.mat", 12, 0)
    test_x, _ = write_svhn_mat(tmp_path / "test_32x32.mat", 6, 1)
    extra_x, _ = write_svhn_mat(tmp_path / "extra_32x32.mat", 5, 2)
    splits = svhn.load(tmp_path)
    assert splits.train_images.shape == (17, 3, 32, 32) and splits.test_images.shape == (6, 3, 32, 32)
    assert splits.train_images.dtype == np.uint8 and splits.num_classes == 10
    # images[n, channel, row, col] == X[row, col, channel, n]
    np.testing.assert_array_equal(splits.train_images[3], train_x[..., 3].transpose(2, 0, 1))
    np.testing.assert_array_equal(splits.train_images[12 + 4], extra_x[..., 4].transpose(2, 0, 1))
    np.testing.assert_array_equal(splits.test_images[5], test_x[..., 5].transpose(2, 0, 1))
    assert splits.train_labels[:12].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # label 10 -> 0
    assert splits.train_labels.min() >= 0 and splits.train_labels.max() <= 9

    # The converted arrays are cached and reused while newer than the .mat ...
    cache = tmp_path / "train_32x32.images.npy"
    assert cache.is_file() and (tmp_path / "train_32x32.labels.npy").is_file()
    marked = np.load(cache)
    marked[0] = 7
    np.save(cache, marked)
    assert (svhn.load(tmp_path).train_images[0] == 7).all()
    # ... and rebuilt once the .mat is newer.
    later = cache.stat().st_mtime + 10
    os.utime(tmp_path / "train_32x32.mat", (later, later))
    np.testing.assert_array_equal(svhn.load(tmp_path).train_images[0], train_x[..., 0].transpose(2, 0, 1))


def test_svhn_training_set_head_is_the_release_train_once_stream(tmp_path):
    """cluster.py fits on the first 60,000 images of `svhn32_train_once`: svhn-train then svhn-extra,
    unshuffled. On the real files that is the first 60,000 of train_32x32.mat (73,257 images)."""
    root = tmp_path / "svhn"
    root.mkdir()
    train_x, _ = write_svhn_mat(root / "train_32x32.mat", 12, 0)
    write_svhn_mat(root / "test_32x32.mat", 6, 1)
    extra_x, _ = write_svhn_mat(root / "extra_32x32.mat", 5, 2)
    source = get_source("svhn", tmp_path)
    as_floats = lambda x: torch.from_numpy(x.transpose(3, 2, 0, 1).astype(np.float32)) * (2 / 255) - 1
    head, labels = source.train_set(limit=8)
    assert head.shape == (8, 3, 32, 32)
    torch.testing.assert_close(head, as_floats(train_x[..., :8]))  # file order, no shuffle, no extra
    assert labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    longer, _ = source.train_set(limit=15)  # past the train file the stream goes on into extra
    torch.testing.assert_close(longer, torch.cat([as_floats(train_x), as_floats(extra_x[..., :3])]))
    assert len(source.train_set()[0]) == 17


def test_svhn_without_extra_needs_no_extra_file(tmp_path):
    write_svhn_mat(tmp_path / "train_32x32.mat", 4, 0)
    write_svhn_mat(tmp_path / "test_32x32.mat", 3, 1)
    assert svhn.load(tmp_path, extra=False).train_images.shape == (4, 3, 32, 32)
    with pytest.raises(DataError) as error:
        svhn.load(tmp_path)  # extra=True is the default (SPEC 6)
    message = _one_line(error)
    assert "extra_32x32.mat" in message and "train_32x32.mat" not in message.split("(")[0]


def test_svhn_corrupt_mat_names_the_file(tmp_path):
    write_svhn_mat(tmp_path / "train_32x32.mat", 4, 0)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataError) as error:
        svhn.load(tmp_path, extra=False)
    assert str(tmp_path / "test_32x32.mat") in _one_line(error)


# --- CIFAR-10 --------------------------------------------------------------------

def cifar_batches(n: int = 4) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    return {name: {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                   b"labels": [(i + k) % 10 for i in range(n)]}
            for k, name in enumerate(cifar10.TRAIN_BATCHES + cifar10.TEST_BATCHES)}


def write_cifar(root: Path, form: str, protocol: int = 2) -> dict[str, dict]:
    batches = cifar_batches()
    root.mkdir(parents=True, exist_ok=True)
    if form == "folder":
        for name, batch in batches.items():
            (root / cifar10.FOLDER).mkdir(exist_ok=True)
            (root / cifar10.FOLDER / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    else:
        with tarfile.open(root / cifar10.ARCHIVE, "w:gz") as tar:
            for name, batch in batches.items():
                data = pickle.dumps(batch, protocol=protocol)
                info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return batches


@pytest.mark.parametrize("form, protocol", [("archive", 2), ("folder", 5)])
def test_cifar10_both_forms(tmp_path, form, protocol):
    batches = write_cifar(tmp_path, form, protocol)
    splits = cifar10.load(tmp_path)
    assert splits.train_images.shape == (20, 3, 32, 32) and splits.test_images.shape == (4, 3, 32, 32)
    assert splits.train_images.dtype == np.uint8 and splits.num_classes == 10
    # A row is 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
    row = batches["data_batch_2"][b"data"][1]
    assert splits.train_images[4 + 1, 1, 3, 5] == row[1024 + 3 * 32 + 5]
    assert splits.train_labels[:8].tolist() == [0, 1, 2, 3, 1, 2, 3, 4]
    assert splits.test_labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_truncated_archive_names_the_file(tmp_path):
    write_cifar(tmp_path, "archive")
    archive = tmp_path / cifar10.ARCHIVE
    archive.write_bytes(archive.read_bytes()[:-300])
    with pytest.raises(DataError) as error:
        cifar10.load(tmp_path)
    assert str(archive) in _one_line(error)


def test_cifar10_refuses_code_in_pickles(tmp_path):
    write_cifar(tmp_path, "folder")

    class Exploit:
        def __reduce__(self):
            return (os.remove, (str(tmp_path / "victim"),))

    (tmp_path / "victim").write_text("still here")
    (tmp_path / cifar10.FOLDER / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(DataError, match="refusing to load"):
        cifar10.load(tmp_path)
    assert (tmp_path / "victim").exists()


# --- CelebA ----------------------------------------------------------------------

CENTRE, BORDER = (200, 60, 120), (20, 230, 40)


def celeba_jpeg(centre=CENTRE, border=BORDER) -> bytes:
    """A 218x178 aligned-face-sized JPEG: `border` in the rows and columns SPEC 6
    crops off, `centre` in the 146x146 square that stays."""
    pixels = np.empty((celeba.HEIGHT, celeba.WIDTH, 3), np.uint8)
    pixels[:] = border
    pixels[36:-36, 16:-16] = centre
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=98, subsampling=0)  # 4:4:4: no chroma bleed
    return buffer.getvalue()


def test_celeba_crop_and_resize(tmp_path):
    (tmp_path / celeba.FOLDER).mkdir()
    (tmp_path / celeba.FOLDER / "000001.jpg").write_bytes(celeba_jpeg())
    (tmp_path / celeba.FOLDER / "000002.jpg").write_bytes(celeba_jpeg())
    splits = celeba.load(tmp_path)
    assert splits.train_images.shape == (1, 3, 32, 32) and splits.test_images.shape == (1, 3, 32, 32)
    assert splits.num_classes == 0 and (splits.train_labels == -1).all()
    # Every output pixel is the centre colour: none of the cropped border leaks in
    # (up to JPEG ringing at the colour edge).
    error = np.abs(splits.train_images[0].astype(int) - np.array(CENTRE)[:, None, None])
    assert error.max() <= 4, error.max()  # even a 1-pixel crop error gives >= 30
    assert (tmp_path / "img_align_celeba.32x32.npy").is_file()


def test_celeba_zip_partition_limit_and_cache(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    with zipfile.ZipFile(tmp_path / celeba.ZIP, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(f"img_align_celeba/{name}", celeba_jpeg(centre=(30 * i,) * 3))
    brightness = lambda images: [int(round(x.mean() / 30)) for x in images]  # noqa: E731

    splits = celeba.load(tmp_path)  # no partition file: first 90% / last 10% by name
    assert brightness(splits.train_images) == [0, 1, 2, 3, 4] and brightness(splits.test_images) == [5]

    (tmp_path / celeba.PARTITION).write_text("".join(f"{n} {p}\n" for n, p in zip(names, [0, 0, 1, 0, 2, 2])))
    splits = celeba.load(tmp_path)  # official partition: 0 train, 2 test, 1 (validation) unused
    assert brightness(splits.train_images) == [0, 1, 3] and brightness(splits.test_images) == [4, 5]

    # limit=4 reads images 1..4, all outside the test partition: split 90/10 instead;
    # the full cache (written above) serves it.
    splits = celeba.load(tmp_path, limit=4)
    assert brightness(splits.train_images) == [0, 1, 2] and brightness(splits.test_images) == [3]
    (tmp_path / "img_align_celeba.32x32.npy").unlink()
    assert brightness(celeba.load(tmp_path, limit=4).train_images) == [0, 1, 2]
    assert (tmp_path / "img_align_celeba.32x32.first4.npy").is_file()


def test_celeba_rejects_other_image_sizes(tmp_path):
    (tmp_path / celeba.FOLDER).mkdir()
    Image.new("RGB", (100, 100)).save(tmp_path / celeba.FOLDER / "000001.jpg")
    Image.new("RGB", (100, 100)).save(tmp_path / celeba.FOLDER / "000002.jpg")
    with pytest.raises(DataError) as error:
        celeba.load(tmp_path)
    assert "000001.jpg" in _one_line(error) and "178x218" in str(error.value)


# --- any folder of images --------------------------------------------------------

def test_folder_classes_and_centre_crop(tmp_path):
    for k, name in enumerate(["dog", "cat"]):  # sorted names -> labels: cat 0, dog 1
        (tmp_path / name).mkdir()
        for i in range(10):
            pixels = np.zeros((40, 60, 3), np.uint8)  # 60 wide: 10 columns each side are cropped
            pixels[:, 10:50] = (50 + 100 * k, 10 * i, 0)
            pixels[:, :10] = pixels[:, 50:] = 255
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    splits = folder.load(tmp_path)
    assert splits.num_classes == 2
    assert len(splits.train_images) == 18 and len(splits.test_images) == 2
    assert splits.train_images.shape[1:] == (3, 32, 32) and splits.train_images.dtype == np.uint8
    images = np.concatenate([splits.train_images, splits.test_images])
    labels = np.concatenate([splits.train_labels, splits.test_labels])
    assert sorted(labels.tolist()) == [0] * 10 + [1] * 10
    assert (images[:, 2] == 0).all()  # no white border column survives the centre crop
    assert set(images[labels == 0, 0].ravel().tolist()) == {150}  # cat
    assert set(images[labels == 1, 0].ravel().tolist()) == {50}  # dog
    again = folder.load(tmp_path)  # the split is deterministic
    np.testing.assert_array_equal(again.test_images, splits.test_images)

    source = get_source(f"folder:{tmp_path}")
    assert source.shape == (3, 32, 32) and source.num_classes == 2


def test_folder_grayscale_unlabelled(tmp_path):
    for i in range(5):
        Image.new("L", (20, 30), color=40 * i).save(tmp_path / f"{i}.bmp")
    splits = folder.load(tmp_path)
    assert splits.train_images.shape == (4, 1, 32, 32) and splits.test_images.shape == (1, 1, 32, 32)
    assert splits.num_classes == 0 and (splits.train_labels == -1).all()


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        folder.load(tmp_path / "absent")
    with pytest.raises(DataError, match="no images"):
        folder.load(tmp_path)
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    with pytest.raises(DataError) as error:
        folder.load(tmp_path)
    assert str(tmp_path / "a.png") in _one_line(error)
    (tmp_path / "a.png").unlink()
    (tmp_path / "class").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "class" / "c.png")
    with pytest.raises(DataError, match="both images"):
        folder.load(tmp_path)


# --- the real MNIST ----------------------------------------------------------------

@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"no MNIST at {REAL_MNIST}")
def test_real_mnist(tmp_path):
    # get_source looks in <data_dir>/mnist; the shared copy is read-only, so link it.
    (tmp_path / "mnist").symlink_to(REAL_MNIST, target_is_directory=True)
    source = get_source("mnist", data_dir=tmp_path)  # checks the SPEC 6 MD5s on the way
    splits = source.splits
    assert splits.train_images.shape == (60000, 1, 32, 32) and splits.test_images.shape == (10000, 1, 32, 32)
    assert set(splits.train_labels.tolist()) == set(range(10)) == set(splits.test_labels.tolist())
    assert splits.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    x, y = source.train_batch(seed=0, step=0, batch_size=8)
    assert x.shape == (8, 1, 32, 32) and float(x.min()) == -1.0 and float(x.max()) <= 1.0
    assert (x[:, :, :2] == -1).all()  # the padding is -1 (SPEC 6)
