"""A corpus of awkward inputs, made here: each is handled or stopped by one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_json, write_png
from PIL import Image

from axondeepsynth.config import DomainConfig
from axondeepsynth.data import formats, images, tiling
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.records import load_sample
from axondeepsynth.data.tiles import RandomTiles
from axondeepsynth.errors import DataError
from axondeepsynth.inspect import inspect


def ads_folder(root: Path, image: np.ndarray, **masks: np.ndarray) -> Path:
    write_png(root / "image.png", image)
    (root / "pixel_size_in_micrometer.txt").write_text("0.1\n")
    for kind, mask in masks.items():
        write_png(root / f"image_seg-{kind}.png", mask)
    return root


@pytest.mark.parametrize("shape", [(1, 1), (100000, 3), (3, 5000)])
def test_extreme_shapes_tile_and_stitch(tmp_path: Path, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    sample = load_sample(formats.scan(ads_folder(tmp_path, image)).records[0])
    assert sample.image.shape == shape
    tiles = RandomTiles([sample], tile=32, length=4, seed=0)
    assert tiles[3]["image"].shape == (1, 32, 32)
    out = tiling.sliding_window(sample.image, lambda x: x, 32, 8, batch_size=64)
    np.testing.assert_allclose(out[0], sample.image, atol=1e-6)


def test_palette_png_reads_as_gray(tmp_path: Path) -> None:
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    Image.fromarray(gray).convert("P").save(tmp_path / "pal.png")
    np.testing.assert_allclose(images.read_image(tmp_path / "pal.png"), gray / 255, atol=1 / 255)


def test_masks_saved_as_0_1_or_index_values(tmp_path: Path) -> None:
    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6], labels[3:5, 3:5] = 1, 2
    binary = ads_folder(
        tmp_path / "a",
        labels * 40,
        axon=(labels == 2).astype(np.uint8),
        myelin=(labels == 1).astype(np.uint8),
    )
    index = ads_folder(tmp_path / "b", labels * 40, axonmyelin=labels)
    for root in (binary, index):
        assert np.array_equal(load_sample(formats.scan(root).records[0]).labels, labels)


def test_empty_mask_and_missing_pixel_size_are_reported(tmp_path: Path) -> None:
    ads_folder(tmp_path / "empty", np.full((8, 8), 9, np.uint8), axon=np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "nopx" / "image.png", np.zeros((8, 8), np.uint8))
    report = inspect(tmp_path, progress=False)
    text = "\n".join(f"{p['path']}: {p['problem']} / {p['fix']}" for p in report["problems"])
    assert "mask is empty" in text and "pixel_size_in_micrometer.txt" in text


def test_empty_domain_names_the_root_and_the_fix(tmp_path: Path) -> None:
    write_json(tmp_path / "dataset_description.json", {"Name": "x"})
    with pytest.raises(DataError, match="has no images") as err:
        load_domain(DomainConfig(root=str(tmp_path)), None, "U")
    assert err.value.path == tmp_path and "inspect" in err.value.fix


def test_labels_without_images_and_bad_sidecars(tmp_path: Path) -> None:
    write_json(tmp_path / "dataset_description.json", {"Name": "x"})
    micr = tmp_path / "sub-a" / "micr"
    write_png(micr / "sub-a_sample-1_SEM.png", np.zeros((8, 8), np.uint8))
    (micr / "sub-a_sample-1_SEM.json").write_text("{not json")
    write_json(micr / "sub-a_sample-2_SEM.json", {"PixelSize": [0.1, 0.2]})
    write_png(micr / "sub-a_sample-2_SEM.png", np.zeros((8, 8), np.uint8))
    problems = "\n".join(map(str, formats.scan(tmp_path).problems))
    assert "unreadable JSON sidecar" in problems and "anisotropic pixel size" in problems


def test_corrupt_corpus_through_the_cli_gives_problems_not_tracebacks(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for name, data in {"zero": b"", "text": b"hello", "trunc": b"\x89PNG\r\n\x1a\n\x00"}.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "image.png").write_bytes(data)
        (folder / "pixel_size_in_micrometer.txt").write_text("0.1")
    ads_folder(root / "good", np.zeros((8, 8), np.uint8), axon=np.zeros((9, 9), np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "axondeepsynth.inspect", str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for name in ("zero", "text", "trunc"):
        assert f"{name}/image.png" in result.stdout
    assert "mask is 9x9 px but its image is 8x8 px" in result.stdout
    assert result.stdout.count("fix:") >= 4
