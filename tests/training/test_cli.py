"""The operator CLI: what an operator sees, and the exit codes scripts rely on."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from restauro.images import encode_png
from restauro.registry import Registry
from tests.data import textured_image


@pytest.fixture
def registry_copy(tiny_registry, tmp_path):
    """The session's tiny registry, copied so a test may promote and retrain in it."""
    return Path(shutil.copytree(tiny_registry, tmp_path / "registry"))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_train_on_an_empty_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(
        "train", "--images", tmp_path / "empty", "--registry", tmp_path / "reg", "-q"
    )
    assert code == 2
    assert one_error_line(err).startswith("error: no images")
    assert Registry(tmp_path / "reg").versions() == []


def test_train_on_only_broken_files(cli, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "b.png").write_bytes(encode_png(textured_image(80, 80))[:100])
    code, _, err = cli("train", "--images", folder, "--registry", tmp_path / "reg", "-q")
    assert code == 2 and "none of the 2 image files" in one_error_line(err)
    assert not any((tmp_path / "reg").glob("*/manifest.json"))


def few_paintings(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.png").write_bytes(encode_png(textured_image(80, 90, seed=i)))
    return folder


def test_more_clusters_than_images(cli, tmp_path):
    folder = few_paintings(tmp_path / "few", 3)
    code, _, err = cli(
        "train",
        "--images",
        folder,
        "--registry",
        tmp_path / "reg",
        "--clusters",
        "5",
        "--validation-fraction",
        "0",
        "-q",
    )
    assert code == 2 and "--clusters 5 is more than the 3" in one_error_line(err)
    assert Registry(tmp_path / "reg").versions() == []


def test_unknown_feature_kind_and_bad_flags(cli, tmp_path):
    code, _, err = cli("train", "--images", tmp_path, "--features", "orb")
    assert code == 2 and "orb" in err
    code, _, err = cli("train", "--images", tmp_path, "--clusters", "many")
    assert code == 2 and "--clusters must be a number or 'auto'" in one_error_line(err)
    code, _, err = cli("train", "--images", tmp_path, "--checkpoint-every", "0")
    assert code == 2 and "--checkpoint-every must be at least 1" in one_error_line(err)
    code, _, err = cli("train", "--images", tmp_path, "--crops", "-1")
    assert code == 2 and "--crops must be 0 or more" in one_error_line(err)
    code, _, err = cli("train", "--images", tmp_path, "--crops", "2", "--crop-zoom", "0.5")
    assert code == 2 and "--crop-zoom must be at least 1" in one_error_line(err)


def test_missing_weights_file(cli, tmp_path):
    folder = few_paintings(tmp_path / "few", 4)
    code, _, err = cli(
        "train",
        "--images",
        folder,
        "--registry",
        tmp_path / "reg",
        "--features",
        "squeezenet",
        "--weights",
        tmp_path / "nope.pth",
        "--clusters",
        "2",
        "-q",
    )
    assert code == 1 and "nope.pth" in one_error_line(err)
    assert Registry(tmp_path / "reg").versions() == []


def test_inpaint_without_a_bundle(cli, tmp_path):
    image = tmp_path / "scan.png"
    rgba = np.dstack([textured_image(80, 80), np.full((80, 80), 255, np.uint8)])
    rgba[10:20, 10:20, 3] = 0
    from PIL import Image

    Image.fromarray(rgba).save(image)
    code, _, err = cli("inpaint", image, "--registry", tmp_path / "none", "-q")
    assert code == 1 and "has no current bundle" in one_error_line(err)


def test_inpaint_route_and_models(cli, registry_copy, tmp_path):
    scan = textured_image(150, 190, seed=5)
    mask = np.zeros(scan.shape[:2], np.uint8)
    mask[40:70, 60:100] = 255
    (tmp_path / "scan.png").write_bytes(encode_png(scan))
    (tmp_path / "mask.png").write_bytes(encode_png(mask))
    out = tmp_path / "out"
    code, stdout, _ = cli(
        "inpaint",
        tmp_path / "scan.png",
        "--mask",
        tmp_path / "mask.png",
        "--registry",
        registry_copy,
        "--candidates",
        "3",
        "--steps",
        "5",
        "--out",
        out,
        "-q",
    )
    assert code == 0 and "5 restorations" in stdout  # 3 GAN completions + 2 diffusion baselines
    result = json.loads((out / "result.json").read_text())
    methods = [c["method"] for c in result["candidates"]]
    assert methods[:3] == [f"gan:{result['target']}"] * 3
    assert sorted(methods[3:]) == ["ns", "telea"]
    assert result["route"]["cluster"] == int(result["target"][1:])
    from restauro.images import read_image

    restored = read_image(out / "restored_1.png").rgb
    assert np.array_equal(restored[mask == 0], scan[mask == 0])

    code, stdout, _ = cli(
        "route", tmp_path / "scan.png", "--mask", tmp_path / "mask.png", "--registry", registry_copy
    )
    assert code == 0 and json.loads(stdout)["cluster"] == result["route"]["cluster"]

    code, _, err = cli(
        "inpaint",
        tmp_path / "scan.png",
        "--mask",
        tmp_path / "mask.png",
        "--registry",
        registry_copy,
        "--cluster",
        "9",
        "-q",
    )
    assert code == 1 and "no cluster 9" in one_error_line(err)

    code, stdout, _ = cli("models", "list", "--registry", registry_copy)
    assert code == 0 and stdout.startswith("* ")
    code, stdout, _ = cli("models", "show", "--registry", registry_copy)
    assert code == 0 and json.loads(stdout)["features"]["kind"] == "sift"
    code, _, err = cli("models", "promote", "nope", "--registry", registry_copy)
    assert code == 1 and "no bundle version 'nope'" in one_error_line(err)
    code, _, err = cli("models", "rollback", "--registry", registry_copy)
    assert code == 1 and "nothing to roll back" in one_error_line(err)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--candidates", "0"], "candidates must be between 1 and 64, got 0"),
        (["--candidates", "100000"], "candidates must be between 1 and 64, got 100000"),
        (["--steps", "0"], "steps must be between 1 and 5000, got 0"),
        (["--seed", "-1"], "seed must be between 0 and 2147483647, got -1"),
        (["--cluster", "0", "--general"], "choose a cluster or the general DCGAN, not both"),
    ],
)
def test_inpaint_refuses_what_the_api_refuses(cli, tiny_registry, tmp_path, flags, message):
    """The CLI and the API share RestoreRequest: the same bounds and the same words (test_api)."""
    scan = textured_image(64, 64, seed=1)
    mask = np.zeros(scan.shape[:2], np.uint8)
    mask[20:30, 20:30] = 255
    (tmp_path / "scan.png").write_bytes(encode_png(scan))
    (tmp_path / "mask.png").write_bytes(encode_png(mask))
    args = ["inpaint", tmp_path / "scan.png", "--mask", tmp_path / "mask.png"]
    code, _, err = cli(*args, "--registry", tiny_registry, *flags, "--out", tmp_path / "o", "-q")
    assert code == 2 and one_error_line(err) == f"error: {message}"
    assert not (tmp_path / "o").exists()
