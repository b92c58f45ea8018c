"""Synthetic nerve phantoms: geometry, looks and the BIDS export."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from axondeepsynth.data.phantoms import (
    AXON,
    BACKGROUND,
    LOOKS,
    MYELIN,
    render,
    render_nerve,
    sample_geometry,
    write_bids_dataset,
)

SEEDS = range(4)


@pytest.fixture(scope="module")
def geometries():
    return [sample_geometry(256, seed) for seed in SEEDS]


def interior_fibres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask of the fibres clear of the border, and their axon and fibre pixel counts."""
    n, fibres = cv2.connectedComponents((labels > 0).astype(np.uint8), connectivity=8)
    border = np.unique(np.concatenate([fibres[0], fibres[-1], fibres[:, 0], fibres[:, -1]]))
    ids = np.setdiff1d(np.arange(1, n), border)
    axon = np.bincount(fibres.ravel(), weights=(labels == AXON).ravel(), minlength=n)
    return np.isin(fibres, ids), axon[ids], np.bincount(fibres.ravel(), minlength=n)[ids]


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_geometry_is_deterministic_per_seed():
    a, b, c = sample_geometry((96, 160), 7), sample_geometry((96, 160), 7), sample_geometry(128, 8)
    assert a.labels.shape == (96, 160) and a.labels.dtype == np.uint8
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.g_ratios, b.g_ratios)
    assert not np.array_equal(a.labels[:96, :128], c.labels[:96, :128])


def test_labels_are_background_myelin_axon(geometries):
    for g in geometries:
        assert set(np.unique(g.labels)) == {BACKGROUND, MYELIN, AXON}


def test_every_interior_axon_is_sheathed_by_myelin(geometries):
    for g in geometries:
        interior, axon, fibre = interior_fibres(g.labels)
        assert len(fibre) >= 5
        assert np.all(axon > 0) and np.all(axon < fibre)  # an axon inside every sheath
        axons = ((g.labels == AXON) & interior).astype(np.uint8)
        grown = cv2.dilate(axons, np.ones((3, 3), np.uint8)).astype(bool)
        assert not np.any(grown & (g.labels == BACKGROUND))


def test_fibres_are_separate_and_some_are_cut_by_the_border(geometries):
    for g in geometries:
        n, _ = cv2.connectedComponents((g.labels > 0).astype(np.uint8), connectivity=8)
        assert n - 1 == len(g.g_ratios) == len(g.axon_diameters)  # no two fibres touch
        rim = np.concatenate([g.labels[0], g.labels[-1], g.labels[:, 0], g.labels[:, -1]])
        assert np.any(rim == MYELIN)


def test_g_ratio_coverage_and_fibre_count_are_realistic(geometries):
    counts = [interior_fibres(g.labels)[1:] for g in geometries]
    measured = np.concatenate([np.sqrt(axon / fibre) for axon, fibre in counts])
    assert 0.55 <= np.median(measured) <= 0.75
    coverage = [np.mean(g.labels > 0) for g in geometries]
    assert 0.4 <= np.mean(coverage) <= 0.6 and 0.3 <= min(coverage) <= max(coverage) <= 0.7
    assert 15 <= np.mean([len(g.g_ratios) for g in geometries]) <= 40
    assert all(0.55 <= g.g_ratios.min() <= g.g_ratios.max() <= 0.75 for g in geometries)


def test_diameters_are_physical_not_pixel_sized():
    fine, coarse = sample_geometry(256, 0, pixel_size=0.03), sample_geometry(256, 0, 0.06)
    assert 0.6 < np.median(fine.axon_diameters) < 1.4
    assert 0.6 < np.median(coarse.axon_diameters) < 1.4
    assert len(coarse.g_ratios) > 2 * len(fine.g_ratios)  # 4x the field of view


def test_render_is_deterministic_float_in_unit_range(geometries):
    labels = geometries[0].labels
    for look in LOOKS:
        img = render(labels, look, seed=1)
        assert img.dtype == np.float32 and img.shape == labels.shape
        assert img.min() >= 0 and img.max() <= 1
        np.testing.assert_array_equal(img, render(labels, look, seed=1))
        assert not np.array_equal(img, render(labels, look, seed=2))
    with pytest.raises(ValueError, match="look"):
        render(labels, "MRI", seed=1)


def test_looks_have_distinct_contrast(geometries):
    for seed, g in zip(SEEDS, geometries, strict=True):
        axon, myelin, bg = (g.labels == AXON), (g.labels == MYELIN), (g.labels == BACKGROUND)
        images = {look: render(g.labels, look, seed) for look in LOOKS}
        tem, sem, bf = (images[k] for k in ("TEM", "SEM", "BF"))
        assert tem[axon].mean() > tem[bg].mean() > tem[myelin].mean() + 0.2
        assert sem[axon].mean() + 0.2 < sem[myelin].mean() and sem[bg].mean() < sem[axon].mean()
        assert bf[axon].mean() > bf[myelin].mean()
        bf_contrast = bf[axon].mean() - bf[myelin].mean()
        assert bf_contrast < 0.5 * (tem[axon].mean() - tem[myelin].mean())
        # SEM is the noisiest, BF the smoothest, measured as the high-pass residual in the matrix
        residual = {k: np.std((v - cv2.blur(v, (3, 3)))[bg]) for k, v in images.items()}
        assert residual["SEM"] > residual["TEM"] > residual["BF"]


def test_render_nerve_shares_geometry_across_looks():
    phantom = render_nerve(256, 5)
    assert set(phantom.images) == set(LOOKS)
    np.testing.assert_array_equal(phantom.geometry.labels, sample_geometry(256, 5).labels)
    np.testing.assert_array_equal(phantom.images["SEM"], render(phantom.geometry.labels, "SEM", 5))


def test_bids_dataset_layout(tmp_path):
    root = write_bids_dataset(tmp_path / "ds", "SEM", n_images=3, size=96, seed=0, n_subjects=2)
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == "1.9.0" and description["DatasetType"] == "raw"
    assert description["GeneratedBy"][0]["Name"] == "axondeepsynth.phantoms"
    labels_root = root / "derivatives" / "labels"
    assert json.loads((labels_root / "dataset_description.json").read_text())["DatasetType"] == (
        "derivative"
    )
    participants = (root / "participants.tsv").read_text().split()
    assert participants == ["participant_id", "sub-phantom01", "sub-phantom02"]
    rows = [line.split("\t") for line in (root / "samples.tsv").read_text().splitlines()]
    assert rows == [
        ["sample_id", "participant_id", "sample_type"],
        ["sample-01", "sub-phantom01", "tissue"],
        ["sample-02", "sub-phantom02", "tissue"],
        ["sample-03", "sub-phantom01", "tissue"],
    ]
    for sample, sub in [(row[0], row[1]) for row in rows[1:]]:
        stem = f"{sub}_{sample}_SEM"
        sidecar = json.loads((root / sub / "micr" / f"{stem}.json").read_text())
        assert sidecar == {"PixelSize": [0.04, 0.04], "PixelSizeUnits": "um"}
        image = read(root / sub / "micr" / f"{stem}.png")
        assert image.dtype == np.uint8 and image.shape == (96, 96) and image.std() > 10
        masks = {
            m: read(labels_root / sub / "micr" / f"{stem}_seg-{m}-manual.png")
            for m in ("axon", "myelin", "axonmyelin")
        }
        assert set(np.unique(masks["axonmyelin"])) <= {0, 127, 255}
        assert set(np.unique(masks["axon"])) <= {0, 255}
        np.testing.assert_array_equal(masks["axonmyelin"] == 255, masks["axon"] == 255)
        np.testing.assert_array_equal(masks["axonmyelin"] == 127, masks["myelin"] == 255)
    assert not [p for p in root.rglob(".*") if p.name != ".bidsignore"]  # no temporary files


def test_same_seed_pairs_looks_and_other_seeds_do_not(tmp_path):
    def axon_masks(look: str, seed: int) -> list[np.ndarray]:
        root = write_bids_dataset(tmp_path / f"{look}{seed}", look, 2, 64, seed, n_subjects=1)
        return [read(p) for p in sorted((root / "derivatives").rglob("*seg-axon-manual.png"))]

    tem, sem, other = axon_masks("TEM", 0), axon_masks("SEM", 0), axon_masks("TEM", 1)
    assert all(np.array_equal(a, b) for a, b in zip(tem, sem, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(tem, other, strict=True))


def test_bids_dataset_is_idempotent_and_resumable(tmp_path):
    root = write_bids_dataset(tmp_path / "ds", "BF", n_images=2, size=64)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    assert write_bids_dataset(tmp_path / "ds", "BF", n_images=2, size=64) == root
    assert [p.stat().st_mtime_ns for p in files] == stamps
    image = next(root.rglob("*_BF.png"))
    content = image.read_bytes()
    image.unlink()  # as if interrupted
    write_bids_dataset(tmp_path / "ds", "BF", n_images=2, size=64)
    assert image.read_bytes() == content


def test_bids_dataset_refuses_foreign_or_different_roots(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(foreign)):
        write_bids_dataset(foreign, "TEM", n_images=1, size=64)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    write_bids_dataset(tmp_path / "empty", "TEM", n_images=1, size=64)
    with pytest.raises(FileExistsError, match=str(tmp_path / "empty")):
        write_bids_dataset(tmp_path / "empty", "TEM", n_images=1, size=64, seed=1)
