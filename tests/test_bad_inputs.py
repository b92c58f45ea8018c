"""A corpus of awkward inputs, made here: each is handled or stopped by one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
from conftest import REPO, compose_cfg, write_json, write_png
from PIL import Image

from axondeepsynth.data import images, layouts, phantoms, stitch
from axondeepsynth.data.config import DomainConfig
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.records import load_sample
from axondeepsynth.data.training_tiles import RandomTiles
from axondeepsynth.errors import ConfigError, DataError
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
    sample = load_sample(layouts.scan(ads_folder(tmp_path, image)).records[0])
    assert sample.image.shape == shape
    tiles = RandomTiles([sample], tile=32, length=4, seed=0)
    assert tiles[3]["image"].shape == (1, 32, 32)
    out = stitch.sliding_window(sample.image, lambda x: x, 32, 8, batch_size=64)
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
    # 16-bit: 0/1/2 and 0/127/255 keep their values, 0/65535 masks are scaled
    wide = ads_folder(tmp_path / "c", labels * 40, axonmyelin=labels.astype(np.uint16))
    full = ads_folder(
        tmp_path / "d",
        labels * 40,
        axon=(labels == 2).astype(np.uint16) * 65535,
        myelin=(labels == 1).astype(np.uint16) * 65535,
    )
    for root in (binary, index, wide, full):
        assert np.array_equal(load_sample(layouts.scan(root).records[0]).labels, labels)


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
    problems = "\n".join(map(str, layouts.scan(tmp_path).problems))
    assert "unreadable JSON sidecar" in problems and "anisotropic pixel size" in problems


@pytest.mark.e2e
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


BAD_PIXEL_SIZES = {
    "zero": [0, 0],
    "negative": [-0.1, -0.1],
    "tiny": [1e-300, 1e-300],
    "string": "a tenth",
    "null": None,
    "dict": {"x": 0.1},
    "nan": [float("nan"), float("nan")],
}


def bids_with_sidecar(root: Path, sidecar: str | bytes) -> Path:
    """A one-image BIDS dataset whose image sidecar holds `sidecar` verbatim."""
    write_json(root / "dataset_description.json", {"Name": "x"})
    micr = root / "sub-a" / "micr"
    write_png(micr / "sub-a_sample-1_SEM.png", np.zeros((32, 32), np.uint8))
    sidecar_path = micr / "sub-a_sample-1_SEM.json"
    if isinstance(sidecar, bytes):
        sidecar_path.write_bytes(sidecar)
    else:
        sidecar_path.write_text(sidecar)
    return sidecar_path


@pytest.mark.parametrize("case", sorted(BAD_PIXEL_SIZES))
def test_bad_bids_pixel_sizes_are_problems_naming_the_sidecar(tmp_path: Path, case: str) -> None:
    sidecar = bids_with_sidecar(tmp_path, json.dumps({"PixelSize": BAD_PIXEL_SIZES[case]}))
    index = layouts.scan(tmp_path)
    assert len(index.problems) == 1, index.problems
    problem = index.problems[0]
    assert problem.path == sidecar and "PixelSize" in problem.fix
    assert "anisotropic" not in problem.problem
    assert index.records[0].pixel_size is None


@pytest.mark.parametrize("content", ['[{"PixelSize": [0.1, 0.1]}]', b'{"PixelSize": [0.1\xff]}'])
def test_sidecar_that_is_a_list_or_not_utf8_is_a_problem(tmp_path: Path, content) -> None:
    sidecar = bids_with_sidecar(tmp_path, content)
    problems = layouts.scan(tmp_path).problems
    assert [p.path for p in problems] == [sidecar]
    assert "JSON" in problems[0].problem


@pytest.mark.parametrize("text", ["nan", "inf", "-0.1", "0", "1e-300", "1e6"])
def test_bad_pixel_size_file_is_a_problem(tmp_path: Path, text: str) -> None:
    folder = ads_folder(tmp_path, np.zeros((32, 32), np.uint8))
    (folder / "pixel_size_in_micrometer.txt").write_text(text)
    problems = layouts.scan(tmp_path).problems
    assert [p.path.name for p in problems] == ["pixel_size_in_micrometer.txt"]
    assert "µm" in problems[0].fix


@pytest.mark.parametrize("sizes", [{"case": "0.1"}, {"case": float("inf")}, [0.1]])
def test_bad_nnunet_pixel_sizes_are_problems(tmp_path: Path, sizes) -> None:
    write_png(tmp_path / "imagesTr" / "case_0000.png", np.zeros((32, 32), np.uint8))
    write_json(
        tmp_path / "dataset.json",
        {"labels": {"background": 0, "myelin": 1, "axon": 2}, "pixel_size_um": sizes},
    )
    index = layouts.scan(tmp_path)
    assert [p.path.name for p in index.problems] == ["dataset.json"], index.problems
    assert index.records == [] or index.records[0].pixel_size is None


def _ads_with(root: Path, image: str = "image.png", pixel_size: str = "0.1", **masks) -> None:
    """An AxonDeepSeg folder with a 64² image (PNG, or a TIFF of the given kind) and masks."""
    import tifffile

    root.mkdir(parents=True)
    arrays = {
        "image.png": None,
        "nan.tif": np.full((64, 64), np.nan, np.float32),
        "stack.tif": np.zeros((5, 64, 64), np.uint8),
    }
    if arrays[image] is None:
        write_png(root / image, np.full((64, 64), 90, np.uint8))
    else:
        tifffile.imwrite(root / image, arrays[image])
    (root / "pixel_size_in_micrometer.txt").write_text(pixel_size)
    for kind, mask in masks.items():
        write_png(root / f"{Path(image).stem}_seg-{kind}.png", mask)


BAD_DATASETS = {  # a dataset -> (the file a user must be pointed at, what is wrong with it)
    "zero pixel size": (
        lambda root: bids_with_sidecar(root, '{"PixelSize": [0, 0]}'),
        "sub-a_sample-1_SEM.json",
        "pixel size 0 is not a finite number",
    ),
    "pixel size text": (
        lambda root: _ads_with(root, pixel_size="0,1 um"),
        "pixel_size_in_micrometer.txt",
        "cannot read a number",
    ),
    "NaN float TIFF": (lambda root: _ads_with(root, "nan.tif"), "nan.tif", "NaN or infinite"),
    "TIFF stack": (lambda root: _ads_with(root, "stack.tif"), "stack.tif", "5 planes of 64x64"),
    "0/1 axonmyelin": (
        lambda root: _ads_with(root, axonmyelin=(rings()[0] > 0).astype(np.uint8)),
        "image_seg-axonmyelin.png",
        "axon or myelin?",
    ),
    "0/3 axon mask": (
        lambda root: _ads_with(root, axon=(rings()[0] > 0).astype(np.uint8) * 3),
        "image_seg-axon.png",
        "values [0, 3]",
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_bad_dataset_stops_inspect_and_run_with_one_named_line(tmp_path: Path, case: str) -> None:
    make, culprit, problem = BAD_DATASETS[case]
    data = tmp_path / "bad"  # beside, not in, paths.data_dir where the L phantoms are made
    make(data)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    inspected = subprocess.run(
        [sys.executable, "-m", "axondeepsynth.inspect", str(data)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert inspected.returncode == 1 and "Traceback" not in inspected.stderr
    assert culprit in inspected.stdout and problem in inspected.stdout, inspected.stdout
    ran = subprocess.run(
        [
            sys.executable, "-m", "axondeepsynth.run", "+experiment=demo", "logger=none",
            f"data.unlabeled.root={data}", "data.unlabeled.phantom=null",
            f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", "stages=[prepare]",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = ran.stdout + ran.stderr
    assert ran.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert culprit in out and problem in out and "fix:" in out
    error = next(line for line in out.splitlines() if "[ERROR]" in line)
    assert problem in error, error  # the reason is in the error, not only in a warning above it
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_non_finite_scale_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"data.labeled.scale"):
        compose_cfg("+experiment=demo", f"data.labeled.scale={value}")


NNUNET_META = {"labels": {"background": 0, "myelin": 1, "axon": 2}, "pixel_size_um": {"c": 0.1}}


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ([1, 2], "not a JSON object"),
        (NNUNET_META | {"labels": "background,myelin,axon"}, "region labels"),
        (NNUNET_META | {"labels": {"background": 0, "axon": [1, 2]}}, "region labels"),
        (NNUNET_META | {"file_ending": ".tif"}, "file_ending '.tif'"),
        ({"labels": NNUNET_META["labels"]}, "no pixel_size_um for case c"),
        (NNUNET_META | {"subjects": {"c": 3}}, "subjects of c are not names"),
        (NNUNET_META | {"subjects": {"c": ["rat1"]}}, "subjects of c are not names"),
        (NNUNET_META | {"subjects": ["rat1"]}, "subjects is not a mapping"),
        (NNUNET_META | {"second_channel": True}, "a second channel"),
    ],
)
def test_bad_nnunet_dataset_json_is_a_problem(tmp_path: Path, meta, expected: str) -> None:
    if isinstance(meta, dict) and meta.pop("second_channel", False):
        write_png(tmp_path / "imagesTr" / "c_0001.png", np.zeros((32, 32), np.uint8))
    write_png(tmp_path / "imagesTr" / "c_0000.png", np.zeros((32, 32), np.uint8))
    write_png(tmp_path / "labelsTr" / "c.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    problems = "\n".join(map(str, layouts.scan(tmp_path).problems))
    assert expected in problems and "fix:" in problems


@pytest.mark.parametrize("meta", ["{", "[1, 2]"])
def test_a_domain_left_without_images_by_broken_metadata_names_the_metadata(
    tmp_path: Path, meta: str
) -> None:
    write_png(tmp_path / "imagesTr" / "c_0000.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "dataset.json").write_text(meta)
    with pytest.raises(DataError) as err:
        load_domain(DomainConfig(root=str(tmp_path)), None, "U")
    assert err.value.path.name == "dataset.json" and "so domain U has no images" in str(err.value)


def rings(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """0/255 axon and myelin masks of two myelinated axons."""
    yy, xx = np.mgrid[:size, :size]
    axon = np.zeros((size, size), np.uint8)
    myelin = np.zeros((size, size), np.uint8)
    for cy, cx in ((16, 16), (44, 40)):
        r = np.hypot(yy - cy, xx - cx)
        myelin[(r >= 6) & (r < 10)] = 255
        axon[r < 6] = 255
    return axon, myelin


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        ({"axon": "axonmyelin"}, "looks like an axonmyelin mask"),
        ({"myelin": "axonmyelin"}, "looks like an axonmyelin mask"),
        ({"axonmyelin": "binary01"}, "only the values [0, 1]"),
        ({"axon": "odd"}, "values [0, 3, 7]"),
        ({"myelin": "grey"}, "values [0, 50, 90]"),
    ],
)
def test_masks_with_unexpected_values_are_named_not_misread(
    tmp_path: Path, masks: dict, expected: str
) -> None:
    axon, myelin = rings()
    variants = {
        "axonmyelin": np.where(axon > 0, 255, np.where(myelin > 0, 127, 0)).astype(np.uint8),
        "binary01": (axon > 0).astype(np.uint8),
        "odd": np.where(axon > 0, 7, np.where(myelin > 0, 3, 0)).astype(np.uint8),
        "grey": np.where(axon > 0, 50, np.where(myelin > 0, 90, 0)).astype(np.uint8),
    }
    given = {"axon": axon, "myelin": myelin}
    given = {k: given[k] for k in ("axon", "myelin") if k in masks or "axonmyelin" not in masks}
    given |= {k: variants[v] for k, v in masks.items()}
    folder = ads_folder(tmp_path, np.zeros((64, 64), np.uint8), **given)
    report = inspect(tmp_path, progress=False)
    text = "\n".join(f"{p['path']}: {p['problem']} / {p['fix']}" for p in report["problems"])
    assert expected in text, text
    kind = next(iter(masks))
    assert f"image_seg-{kind}.png" in text
    record = layouts.scan(folder).records[0]
    with pytest.raises(DataError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_sample(record)


@pytest.mark.parametrize("kind", ["axonmyelin", "axon"])
def test_a_mask_stored_as_jpeg_is_refused_whatever_its_name(tmp_path: Path, kind: str) -> None:
    """JPEG moves a mask's values at every edge; a 0/255 mask would even pass thresholding."""
    axon, myelin = rings()
    masks = {"axon": axon, "myelin": myelin}
    if kind == "axonmyelin":
        masks = {kind: np.where(axon > 0, 255, np.where(myelin > 0, 127, 0)).astype(np.uint8)}
    image = np.full((64, 64), 90, np.uint8)
    folder = ads_folder(tmp_path, image, **masks)
    _, jpeg = cv2.imencode(".jpg", masks[kind], [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / f"image_seg-{kind}.png").write_bytes(jpeg.tobytes())
    with pytest.raises(DataError, match="mask is a JPEG file") as err:
        load_sample(layouts.scan(folder).records[0])
    assert err.value.path.name == f"image_seg-{kind}.png" and "losslessly" in str(err.value)
    # an image stored as JPEG is read for what it holds, whatever its name
    _, jpeg = cv2.imencode(".jpg", image)
    (folder / "image.png").write_bytes(jpeg.tobytes())
    assert abs(float(images.read_image(folder / "image.png").mean()) - 90 / 255) < 0.01


@pytest.mark.parametrize(
    ("case", "expected"),
    [("outside", "touch no myelin"), ("everything", "covers 100% of the image")],
)
def test_implausible_masks_are_flagged_by_inspect(tmp_path: Path, case: str, expected: str):
    axon, myelin = rings()
    if case == "outside":
        axon = np.roll(axon, 32, axis=1)  # axons moved away from their rings
    else:
        axon, myelin = np.full_like(axon, 255), np.zeros_like(myelin)
    ads_folder(tmp_path, np.zeros((64, 64), np.uint8), axon=axon, myelin=myelin)
    report = inspect(tmp_path, progress=False)
    problems = [p["problem"] for p in report["problems"]]
    assert any(expected in p for p in problems), problems


def test_inspect_says_what_each_mask_was_read_as(tmp_path: Path) -> None:
    axon, myelin = rings()
    ads_folder(
        tmp_path, np.zeros((64, 64), np.uint8), axon=(axon > 0).astype(np.uint8), myelin=myelin
    )
    report = inspect(tmp_path, progress=False)
    assert report["problems"] == []
    assert report["images"][0]["masks_read_as"] == {"axon": "0/1", "myelin": "0/255"}


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((5, 64, 64), np.uint8), "5 planes of 64x64"),
        (np.zeros((64, 64, 2), np.uint16), "2 planes of 64x64"),
        (np.full((64, 64), np.nan, np.float32), "NaN or infinite"),
        (np.full((64, 64), 1000, np.uint16), "every pixel of this uint16 image is 1000"),
    ],
)
def test_stacks_and_nan_tiffs_are_refused_by_inspect_and_reader(
    tmp_path: Path, array: np.ndarray, expected: str
) -> None:
    import tifffile

    folder = tmp_path / "ads"
    folder.mkdir()
    tifffile.imwrite(folder / "image.tif", array)
    (folder / "pixel_size_in_micrometer.txt").write_text("0.1")
    report = inspect(tmp_path, progress=False)
    assert [p["path"] for p in report["problems"]] == [str(folder / "image.tif")]
    assert expected in report["problems"][0]["problem"]
    with pytest.raises(DataError, match=expected):
        images.read_image(folder / "image.tif")


@pytest.mark.parametrize("key", ["translator.train.max_epochs", "segmenter.train.max_epochs"])
@pytest.mark.parametrize("value", ["-5", "0"])
def test_non_positive_epochs_are_config_errors(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        compose_cfg("+experiment=demo", f"{key}={value}")


@pytest.mark.parametrize(
    ("domain", "strategies", "expected"),
    [("labeled", "[tutorship]", "domain L has no labelled image"),
     ("unlabeled", "[direct,oracle]", "domain U has no labelled image")],
)  # fmt: skip
def test_missing_labels_stop_the_run_at_prepare(
    tmp_path: Path, domain: str, strategies: str, expected: str
) -> None:
    from axondeepsynth.pipeline import prepare
    from axondeepsynth.pipeline.context import Run

    for i in range(3):
        ads_folder(tmp_path / "plain" / f"im{i}", np.full((64, 64), 40 * i, np.uint8))
    cfg = compose_cfg(
        "+experiment=demo",
        f"data.{domain}.root={tmp_path / 'plain'}",
        f"data.{domain}.phantom=null",
        f"segmenter.strategies={strategies}",
        "segmenter.k=2",
        tmp=tmp_path,
    )
    with pytest.raises(DataError, match=expected) as err:
        prepare.run(Run(cfg, tmp_path / "run"))
    assert err.value.path == tmp_path / "plain" and "inspect" in err.value.fix


@pytest.mark.parametrize("factor", [1e-9, 1e6])
def test_resampling_to_an_absurd_size_names_the_image(tmp_path: Path, factor: float) -> None:
    from axondeepsynth.data.resample import resample

    folder = ads_folder(tmp_path, np.zeros((256, 256), np.uint8))
    sample = load_sample(layouts.scan(folder).records[0])
    with pytest.raises(DataError, match="would make this 256x256 px image") as err:
        resample(sample, factor)
    assert err.value.path == folder / "image.png"


def test_two_images_with_one_name_stop_the_run_before_any_work(tmp_path: Path) -> None:
    write_json(tmp_path / "dataset_description.json", {"Name": "x"})
    for folder in ("sub-rat1/micr", "sub-rat1/ses-1/micr"):
        write_png(tmp_path / folder / "sub-rat1_sample-1_SEM.png", np.zeros((32, 32), np.uint8))
        write_json(tmp_path / folder / "sub-rat1_sample-1_SEM.json", {"PixelSize": [0.1, 0.1]})
    with pytest.raises(DataError, match="their outputs would overwrite each other") as err:
        load_domain(DomainConfig(root=str(tmp_path)), None, "U")
    assert "ses-1" in str(err.value) and "ses-" in err.value.fix


class Payload:
    def __reduce__(self):  # would create a file if unpickled with code execution
        return (os.system, ("touch pwned",))


def bad_checkpoints(folder: Path) -> dict[str, Path]:
    """Files a user might pass as translator.sample.ckpt_path by mistake, or an attacker on
    purpose."""
    import pickle

    import torch

    from axondeepsynth.training.segmenter import Segmenter

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, folder / "good-looking.ckpt")
    data = (folder / "good-looking.ckpt").read_bytes()
    files = {
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "truncated": data[: len(data) // 2],
        "code": pickle.dumps(Payload()),
    }
    paths = {name: folder / f"{name}.ckpt" for name in files}
    for name, content in files.items():
        paths[name].write_bytes(content)
    seg = pl.Trainer(logger=False, max_epochs=0, enable_checkpointing=False)
    seg.strategy.connect(Segmenter({"unet": {"base_channels": 4, "depth": 2}}))
    paths["segmenter"] = folder / "segmenter.ckpt"
    seg.save_checkpoint(paths["segmenter"])
    return paths


@pytest.mark.e2e
def test_bad_translator_checkpoints_are_named_before_any_stage(tmp_path: Path) -> None:
    from axondeepsynth.inference import load_translator

    for name, path in bad_checkpoints(tmp_path / "ckpts").items():
        with pytest.raises(ConfigError, match="translator.sample.ckpt_path") as err:
            load_translator(path)
        assert str(path) in str(err.value), name
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()

    run_dir = tmp_path / "run"
    ran = subprocess.run(
        [
            sys.executable, "-m", "axondeepsynth.run", "+experiment=demo", "logger=none",
            "stages=[prepare,translate,train_segmenter]", f"paths.root_dir={tmp_path}",
            f"translator.sample.ckpt_path={tmp_path / 'ckpts' / 'truncated.ckpt'}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = ran.stdout + ran.stderr
    assert ran.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "config 'translator.sample.ckpt_path'" in out and "truncated.ckpt" in out
    assert not (run_dir / "translator").exists()  # nothing claimed: a good checkpoint is welcome
    assert not (run_dir / "data_summary.json").exists()  # checked before the first stage


def test_pixel_size_in_nanometres_is_judged_in_micrometres(tmp_path: Path) -> None:
    bids_with_sidecar(tmp_path, json.dumps({"PixelSize": [200, 200], "PixelSizeUnits": "nm"}))
    index = layouts.scan(tmp_path)
    assert index.problems == [] and index.records[0].pixel_size == pytest.approx(0.2)


def test_phantoms_are_never_written_into_a_folder_the_tool_did_not_make(tmp_path: Path) -> None:
    """The demo pointed at a user's folder (empty, mistyped or full) refuses, naming the fix;
    the tool's own phantom folders and one made earlier keep working."""
    mine = tmp_path / "my-sem"
    mine.mkdir()
    for root in (mine, tmp_path / "typo", tmp_path):
        with pytest.raises(ConfigError, match=r"(?s)data.unlabeled.root.*phantom=null"):
            compose_cfg("+experiment=demo", f"data.unlabeled.root={root}", tmp=tmp_path / "ads")
    assert not any(mine.iterdir()) and not (tmp_path / "typo").exists()
    compose_cfg("+experiment=demo", tmp=tmp_path / "ads")  # under paths.data_dir
    made = tmp_path / "made"
    phantoms.write_bids_dataset(made, "SEM", n_images=2, size=32)
    compose_cfg("+experiment=demo", f"data.unlabeled.root={made}", tmp=tmp_path / "ads")


def test_a_name_too_long_for_its_outputs_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    root = ads_folder(tmp_path / "long", np.zeros((32, 32), np.uint8))
    (root / "image.png").rename(root / f"{'a' * 244}.png")
    ads_folder(tmp_path / "long" / "short", np.zeros((32, 32), np.uint8))
    index = layouts.scan(root)
    assert [r.name for r in index.records] == ["short_image"]
    (problem,) = index.problems
    assert "too long" in problem.problem and "rename" in problem.fix


def test_an_overlay_of_a_long_name_is_cut_and_marked() -> None:
    from axondeepsynth.pipeline.evaluate import _file_name

    assert _file_name("short", ".png") == "short.png"
    long_a, long_b = _file_name("x" * 300 + "a", ".png"), _file_name("x" * 300 + "b", ".png")
    assert len(long_a.encode()) <= 255 and long_a.endswith(".png") and long_a != long_b


def test_the_same_root_twice_in_a_domain_is_refused(tmp_path: Path) -> None:
    sets = f"[{{root: {tmp_path}/a}}, {{root: {tmp_path}/b}}, {{root: {tmp_path}/a/}}]"
    with pytest.raises(ConfigError, match=r"(?s)data.labeled.sets.*/a is given more than once"):
        compose_cfg(
            "+experiment=sem_real_cpu", "data.labeled.root=null", f"data.labeled.sets={sets}"
        )


def test_an_image_the_scan_leaves_out_stops_the_run_naming_it(tmp_path: Path) -> None:
    """A '.' in a BIDS entity value made the image drop out with a warning; now it is named."""
    root = phantoms.write_bids_dataset(tmp_path / "sem", "SEM", n_images=2, size=32)
    image = next(root.rglob("*_SEM.png"))
    dotted = image.with_name(image.name.replace("sample-", "sample-data1.5"))
    image.rename(dotted)
    with pytest.raises(DataError, match=r"(?s)data1\.5.*'\.' inside the file name.*data1p5"):
        load_domain(DomainConfig(root=str(root), modality="SEM"), None, "U")
