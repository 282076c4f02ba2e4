import numpy as np
import pytest

from restauro.dataset import MIN_SIDE, ingest, is_validation, stable_sample
from restauro.errors import DatasetError
from restauro.images import encode_png
from tests.data import paintings_dir, textured_image


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "paintings"
    (root / "Baroque").mkdir(parents=True)
    (root / "Rococo").mkdir()
    good = [textured_image(80 + 7 * i, 120, seed=i) for i in range(4)]
    for i, rgb in enumerate(good[:2]):
        (root / "Baroque" / f"p{i}.png").write_bytes(encode_png(rgb))
    for i, rgb in enumerate(good[2:]):
        (root / "Rococo" / f"p{i}.PNG").write_bytes(encode_png(rgb))
    (root / "Rococo" / "copy.png").write_bytes(encode_png(good[0]))  # exact duplicate
    data = encode_png(textured_image(90, 90, seed=9))
    (root / "Rococo" / "truncated.png").write_bytes(data[: len(data) // 3])
    (root / "Rococo" / "notes.jpg").write_text("not an image")
    (root / "Rococo" / "thumb.png").write_bytes(encode_png(textured_image(MIN_SIDE - 1, 200)))
    (root / "Rococo" / "readme.txt").write_text("ignored: not an image suffix")
    return root


def test_ingest_keeps_good_and_explains_the_rest(messy_folder):
    ds = ingest(messy_folder)
    assert len(ds) == 4
    assert sorted(set(ds.labels)) == ["Baroque", "Rococo"]
    reasons = {r.path: r.reason for r in ds.rejected}
    assert set(reasons) == {"Rococo/truncated.png", "Rococo/notes.jpg", "Rococo/thumb.png"}
    assert reasons["Rococo/thumb.png"].startswith("too_small")
    assert [d.path for d in ds.duplicates] == ["Rococo/copy.png"]
    summary = ds.summary()
    assert summary["accepted"] == 4 and summary["rejected"] == 3 and summary["duplicates"] == 1
    assert ds.training_images(64).shape == (4, 64, 64, 3)


def test_empty_and_broken_folders_are_dataset_errors(tmp_path, messy_folder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        ingest(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        ingest(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match="none of the 1 image files"):
        ingest(broken)


def test_sampling_and_split_are_stable():
    paths = [f"style{i % 5}/p{i}.jpg" for i in range(100)]
    sample = stable_sample(paths, 20, seed=1)
    assert sample == stable_sample(list(reversed(paths)), 20, seed=1)
    assert len({p.split("/")[0] for p in sample}) == 5
    val = [p for p in paths if is_validation(p, 0.2)]
    assert 8 <= len(val) <= 35
    assert not any(is_validation(p, 0.0) for p in paths)


def test_ingest_real_paintings_subset():
    ds = ingest(paintings_dir(), max_images=12)
    assert len(ds) + len(ds.rejected) + len(ds.duplicates) == 12
    assert all(max(p.rgb.shape[:2]) <= 256 for p in ds.paintings)
    assert ds.training_images(64).dtype == np.uint8


def test_training_crops_are_zoomed_in_regions_after_each_centre_square():
    ds = ingest(paintings_dir(), max_images=6)
    whole = ds.training_images(64)
    views = ds.training_images(64, crops=3, max_zoom=4.0, seed=1)
    assert views.shape == (len(ds) * 4, 64, 64, 3) and views.dtype == np.uint8
    assert np.array_equal(views[::4], whole)  # the centre squares first, unchanged
    assert np.array_equal(views, ds.training_images(64, crops=3, max_zoom=4.0, seed=1))
    assert not np.array_equal(views, ds.training_images(64, crops=3, max_zoom=4.0, seed=2))
    # a painting's crops do not depend on which other paintings are in the set
    alone = ds.subset([2]).training_images(64, crops=3, max_zoom=4.0, seed=1)
    assert np.array_equal(alone, views[8:12])
    crops = views.reshape(len(ds), 4, 64, 64, 3)[:, 1:]
    assert all(not np.array_equal(c, whole[i]) for i in range(len(ds)) for c in crops[i])
    # zoom 1 is the whole short side: a crop then only slides along the long side
    flat = ds.training_images(64, crops=1, max_zoom=1.0, seed=0)
    assert flat.shape == (len(ds) * 2, 64, 64, 3)
