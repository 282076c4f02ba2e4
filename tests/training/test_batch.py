"""`restauro inpaint DIR`: a folder of scans, one of them broken, restored here on the tiny bundle.

The others are restored (masks by matching name, or the alpha channel), the broken one is one
error line and one report entry, the exit status is 1, and a rerun restores nothing twice.
The same through a running service (--via) is in tests/integration/test_batch_via.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from restauro.images import encode_png, read_image
from tests.data import textured_image
from tests.training.test_cli import one_error_line


def damage(h: int, w: int, seed: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    y, x = 10 + 7 * seed % 20, 12 + 11 * seed % 30
    mask[y : y + 14, x : x + 18] = 255
    return mask


def make_folder(root: Path, n: int = 3) -> tuple[Path, Path, dict[str, tuple]]:
    """n scans with masks in masks/ (one as JPEG, matched by stem), one RGBA scan whose alpha
    marks its damage, and one broken file."""
    scans, masks = root / "scans", root / "masks"
    scans.mkdir()
    masks.mkdir()
    expected = {}
    for i in range(n):
        scan, mask = textured_image(64, 80, seed=i), damage(64, 80, i)
        (scans / f"scan{i}.png").write_bytes(encode_png(scan))
        (masks / f"scan{i}.png").write_bytes(encode_png(mask))
        expected[f"scan{i}"] = (scan, mask > 0)
    scan, mask = textured_image(64, 80, seed=9), damage(64, 80, 9)
    rgba = np.dstack([scan, np.where(mask > 0, 0, 255).astype(np.uint8)])
    from PIL import Image

    Image.fromarray(rgba, "RGBA").save(scans / "alpha.png")
    expected["alpha"] = (scan, mask > 0)
    (scans / "broken.png").write_bytes(encode_png(textured_image(64, 80))[:120])
    (scans / "notes.txt").write_text("not a scan: ignored")
    return scans, masks, expected


def test_folder_with_a_broken_file_resumes(cli, tiny_registry: Path, tmp_path: Path) -> None:
    scans, masks, expected = make_folder(tmp_path)
    out = tmp_path / "out"
    args = ["inpaint", scans, "--masks", masks, "--out", out, "--registry", tiny_registry]
    args += ["--candidates", "2", "--steps", "2", "-q"]

    code, stdout, err = cli(*args)
    assert code == 1
    line = one_error_line(err)
    assert line.startswith("error: broken.png: ")
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"restored": 4, "skipped": 0, "failed": 1}
    by_name = {Path(f["input"]).name: f for f in report["files"]}
    assert by_name["broken.png"]["status"] == "failed"
    assert by_name["broken.png"]["error"]["error"] == "invalid_image"
    assert by_name["alpha.png"]["mask"] == "alpha"
    assert "5 scans: 4 restored, 0 skipped (already done), 1 failed" in stdout
    assert "broken.png" in stdout and "scan0.png" in stdout  # the table names every scan

    stamps = {}
    for stem, (scan, mask) in expected.items():
        restored = read_image(out / stem / "restored_1.png").rgb
        assert np.array_equal(restored[~mask], scan[~mask])  # only the damage was touched
        assert not np.array_equal(restored[mask], scan[mask])
        result = json.loads((out / stem / "result.json").read_text())
        ranks = [c["rank"] for c in result["candidates"]]
        assert ranks == list(range(1, len(ranks) + 1)) and result["input"].endswith(f"{stem}.png")
        stamps[stem] = (out / stem / "restored_1.png").stat().st_mtime_ns

    # Rerun: nothing is restored twice; the broken file is reported again.
    code, stdout, err = cli(*args)
    assert code == 1 and one_error_line(err).startswith("error: broken.png: ")
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"restored": 0, "skipped": 4, "failed": 1}
    for stem, stamp in stamps.items():
        assert (out / stem / "restored_1.png").stat().st_mtime_ns == stamp

    # A scan replaced by new bytes is restored again; fixing the broken one completes the batch.
    (scans / "scan1.png").write_bytes(encode_png(textured_image(64, 80, seed=21)))
    (scans / "broken.png").write_bytes(encode_png(textured_image(64, 80, seed=22)))
    (masks / "broken.png").write_bytes(encode_png(damage(64, 80, 5)))
    code, _, err = cli(*args)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"restored": 2, "skipped": 3, "failed": 0}


def test_folder_mistakes_are_one_line(cli, tiny_registry: Path, tmp_path: Path) -> None:
    scans, masks, _ = make_folder(tmp_path)
    base = ["--registry", tiny_registry, "-q"]
    code, _, err = cli("inpaint", scans, "--mask", masks / "scan0.png", *base)
    assert code == 2 and "--masks DIR" in one_error_line(err)
    code, _, err = cli("inpaint", scans / "scan0.png", "--masks", masks, *base)
    assert code == 2 and "--mask FILE" in one_error_line(err)
    (tmp_path / "empty").mkdir()
    code, _, err = cli("inpaint", tmp_path / "empty", *base)
    assert code == 2 and "no scans in" in one_error_line(err)
    code, _, err = cli("inpaint", scans, "--masks", tmp_path / "nope", *base)
    assert code == 2 and "is not a folder" in one_error_line(err)
    code, _, err = cli(
        "inpaint", scans, "--masks", masks, "--bundle", "20990101-000000-abcdef", *base
    )
    assert code == 1 and "no bundle version" in one_error_line(err)  # once, not once per scan
