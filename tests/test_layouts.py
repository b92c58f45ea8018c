"""Readers of BIDS, AxonDeepSeg and nnU-Net datasets, on real and generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import write_json, write_png

from axondeepsynth.data import images, labels, layouts
from axondeepsynth.data.layouts import nnunet
from axondeepsynth.data.records import Sample, load_sample
from axondeepsynth.errors import DataError

SEM_PIXEL_SIZES = {
    "sub-rat1_sample-data1_SEM": 0.18,
    "sub-rat2_sample-data5_SEM": 0.093,
    "sub-rat3_sample-data9_SEM": 0.1,
    "sub-rat3_sample-data10_SEM": 0.1,
    "sub-rat3_sample-data11_SEM": 0.1,
    "sub-rat4_sample-data12_SEM": 0.1,
    "sub-rat5_sample-data14_SEM": 0.13,
    "sub-rat7_sample-Maxo03img60_SEM": 0.07,
}


def test_real_sem_bids_pixel_sizes_and_labels(shared_data: Path) -> None:
    index = layouts.scan(shared_data / "sem")
    assert index.layout == "bids" and not index.problems
    assert {r.name: r.pixel_size for r in index.records} == SEM_PIXEL_SIZES
    rat3 = [r for r in index.records if r.subject == "sub-rat3"]
    assert len(rat3) == 3 and all(r.pixel_size_from.endswith("sub-rat3_SEM.json") for r in rat3)
    assert all(set(r.labels) == {"axon", "myelin", "axonmyelin"} for r in index.records)
    sample = load_sample(rat3[0])
    assert sample.image.dtype == np.float32 and 0 <= sample.image.min() < sample.image.max() <= 1
    assert set(np.unique(sample.labels)) == {0, 1, 2}
    # the axonmyelin mask agrees with the separate axon mask
    axon = images.read_mask(rat3[0].labels["axon"]) > 127
    assert np.mean((sample.labels == 2) == axon) > 0.999


def test_real_tem_axondeepseg_and_16bit(shared_data: Path) -> None:
    index = layouts.scan(shared_data / "tem")
    by_name = {r.name: r for r in index.records}
    assert index.layout == "axondeepseg" and not index.problems
    assert by_name["mouse-2000px_image"].pixel_size == pytest.approx(0.00236)
    strip = load_sample(by_name["strip-16bit_image"])
    assert strip.labels is None and strip.image.shape == (209, 2048)
    assert strip.image.std() > 0.1  # 16-bit range stretched, not crushed to black
    assert images.info(by_name["strip-16bit_image"].image).dtype == "uint16"


def test_bids_inheritance_and_units(tiny_bids: Path) -> None:
    sizes = {r.name: r.pixel_size for r in layouts.scan(tiny_bids).records}
    assert sizes == {"sub-a_sample-s1_SEM": 0.1, "sub-a_sample-s2_SEM": pytest.approx(0.02)}


def test_bids_problems_name_file_and_fix(tiny_bids: Path) -> None:
    micr = tiny_bids / "sub-a" / "micr"
    (micr / "sub-a_SEM.json").unlink()
    write_png(micr / "sub-a_sample-s3_XYZ.png", np.zeros((4, 4), np.uint8))
    write_png(
        tiny_bids / "derivatives/labels/sub-a/micr/sub-a_sample-s9_SEM_seg-axon-manual.png",
        np.zeros((4, 4), np.uint8),
    )
    index = layouts.scan(tiny_bids)
    text = "\n".join(map(str, index.problems))
    assert "sub-a_sample-s1_SEM.png: no PixelSize" in text and "pixel_size" in text
    assert "unknown modality suffix 'XYZ'" in text
    assert "label without an image" in text
    s1 = next(r for r in index.records if r.name == "sub-a_sample-s1_SEM")
    with pytest.raises(DataError, match="(?s)no pixel size.*pixel_size=") as err:
        load_sample(s1)
    assert err.value.path.name == "sub-a_sample-s1_SEM.png"
    assert load_sample(s1, pixel_size=0.2).pixel_size == 0.2


def test_mask_size_mismatch_names_mask(tiny_bids: Path) -> None:
    mask = tiny_bids / "derivatives/labels/sub-a/micr/sub-a_sample-s1_SEM_seg-axonmyelin-manual.png"
    write_png(mask, np.zeros((10, 10), np.uint8))
    record = next(r for r in layouts.scan(tiny_bids).records if r.name.endswith("s1_SEM"))
    with pytest.raises(DataError, match="10x10 px but its image is 50x40") as err:
        load_sample(record)
    assert err.value.path == mask


def test_duplicate_names_reported(tiny_bids: Path) -> None:
    micr = tiny_bids / "sub-a" / "micr"
    tifffile.imwrite(micr / "sub-a_sample-s1_SEM.tif", np.zeros((4, 4), np.uint8))
    assert any("duplicate sample name" in str(p) for p in layouts.scan(tiny_bids).problems)


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_bad_image_files(tmp_path: Path, kind: str) -> None:
    good = write_png(tmp_path / "good.png", np.full((64, 64), 7, np.uint8)).read_bytes()
    path = tmp_path / "bad.png"
    path.write_bytes({"empty": b"", "truncated": good[:40], "text": b"not an image"}[kind])
    with pytest.raises(DataError) as err:
        images.read_image(path)
    assert err.value.path == path and err.value.fix


def test_image_kinds_to_gray(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    rgb = write_png(tmp_path / "rgb.png", np.stack([gray] * 3, -1))
    rgba = write_png(tmp_path / "rgba.png", np.dstack([gray] * 3 + [np.full_like(gray, 255)]))
    for path in (rgb, rgba):
        assert np.allclose(images.read_image(path), gray / 255.0, atol=1e-5)
    deep = gray.astype(np.uint16) * 16  # 12-bit data in a 16-bit TIFF
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    out = images.read_image(tmp_path / "deep.tif")
    assert out.min() == 0.0 and out.max() == 1.0
    tifffile.imwrite(tmp_path / "f.tif", gray.astype(np.float32) / 7)
    assert np.allclose(
        images.read_image(tmp_path / "f.tif"), images.read_image(tmp_path / "deep.tif")
    )


def test_axonmyelin_thresholds_like_axondeepseg() -> None:
    mask = np.array([[0, 90, 100, 127, 150, 200, 201, 255]], np.uint8)
    assert labels.from_axonmyelin(mask).tolist() == [[0, 0, 1, 1, 1, 1, 2, 2]]
    lab = np.array([[0, 1, 2]], np.uint8)
    masks = dict(labels.to_masks(lab))
    assert masks["axonmyelin"].tolist() == [[0, 127, 255]]
    assert labels.from_masks(masks["axon"], masks["myelin"]).tolist() == lab.tolist()


def test_masks_are_made_one_at_a_time_a_byte_a_pixel() -> None:
    """A 20000² mosaic's masks must fit beside its label map: each made with a byte a pixel of
    temporaries at most (np.choose and np.where with int scalars made eight)."""
    import tracemalloc

    lab = np.random.default_rng(0).integers(0, 3, (1000, 1000), dtype=np.uint8)
    made, peak = [], 0
    tracemalloc.start()
    for kind, mask in labels.to_masks(lab):
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        made.append((kind, mask.dtype, int(mask.max())))
        del mask
    tracemalloc.stop()
    assert made == [
        ("axon", np.uint8, 255),
        ("myelin", np.uint8, 255),
        ("axonmyelin", np.uint8, 255),
    ]
    assert peak < 2.5 * lab.nbytes


def test_axondeepseg_missing_pixel_size(tmp_path: Path) -> None:
    write_png(tmp_path / "img" / "image.png", np.zeros((8, 8), np.uint8))
    index = layouts.scan(tmp_path)
    assert index.records[0].pixel_size is None
    assert "pixel_size_in_micrometer.txt" in str(index.problems[0])


def test_nnunet_round_trip(tiny_bids: Path, tmp_path: Path) -> None:
    samples = [load_sample(r) for r in layouts.scan(tiny_bids).records]
    root = tmp_path / "Dataset001_Tiny"
    assert len(nnunet.write(samples, root, None, {"Name": "Tiny"})) == len(samples)
    index = layouts.scan(root)
    assert index.layout == "nnunet" and not index.problems
    back = {s.name: s for s in (load_sample(r) for r in index.records)}
    for s in samples:
        b = back[s.name]
        assert b.pixel_size == pytest.approx(s.pixel_size)
        assert np.array_equal(b.labels, s.labels)
        assert np.abs(b.image - s.image).max() <= 0.5 / 255 + 1e-6


def test_nnunet_undeclared_label_value(tmp_path: Path) -> None:
    root = tmp_path / "Dataset002_X"
    write_json(
        root / "dataset.json",
        {
            "labels": {"background": 0, "myelin": 1, "axon": 2},
            "file_ending": ".png",
            "pixel_size_um": {"c": 0.1},
        },
    )
    write_png(root / "imagesTr" / "c_0000.png", np.zeros((8, 8), np.uint8))
    write_png(root / "labelsTr" / "c.png", np.full((8, 8), 5, np.uint8))
    with pytest.raises(DataError, match=r"\[5\] are not declared"):
        load_sample(layouts.scan(root).records[0])


@pytest.mark.parametrize("layout", ["axondeepseg", "nnunet"])
def test_written_datasets_keep_subjects(tmp_path: Path, layout: str) -> None:
    """Folds split by subject, so a translated set written as AxonDeepSeg or nnU-Net must read
    back with its images' subjects (BIDS keeps them in its paths)."""
    image, mask = np.full((8, 8), 0.5, np.float32), np.zeros((8, 8), np.uint8)
    samples = [
        Sample(f"rat{s}_img{i}", f"rat{s}", image, 0.1, mask, Path("x.png"), (8, 8))
        for s in "ab"
        for i in range(2)
    ]
    layouts.LAYOUTS[layout].write(samples, tmp_path / "out", "SEM", {})
    records = layouts.scan(tmp_path / "out").records
    assert sorted(r.subject for r in records) == ["rata", "rata", "ratb", "ratb"]


def test_nnunet_case_names_never_collide() -> None:
    """`a/b_c` and `a_b/c` flatten alike: each gets its own case, other keys keep theirs."""
    from axondeepsynth.data.layouts.nnunet import case_names

    names = case_names(["a/b_c", "a_b/c", "sub-1/img"])
    assert names["sub-1/img"] == "sub-1_img"
    assert len(set(names.values())) == 3
    assert all(names[k].startswith("a_b_c_") for k in ("a/b_c", "a_b/c"))
