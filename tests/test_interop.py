"""AxonDeepSeg 5.5's own commands on our outputs (`make test-interop`: its venv, built once from
the package index, since it pins torch 2.3.1 and cannot live beside us). Skipped without it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED, compose_cfg
from test_segment import RUN

from axondeepsynth import detection, morphometrics, segment
from axondeepsynth.data import images
from axondeepsynth.data.labels import AXON, from_axonmyelin
from axondeepsynth.pipeline import run_stages

VENV = Path(os.environ.get("AXONDEEPSEG_VENV", REPO / ".venv-ads")).absolute()
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        not (VENV / "bin" / "axondeepseg_morphometrics").is_file(),
        reason=f"no AxonDeepSeg venv at {VENV} (make test-interop builds it)",
    ),
]
SEM = SHARED / "sem"
AXON_ONLY = {
    "x0 (px)",
    "y0 (px)",
    "axon_area (um^2)",
    "axon_perimeter (um)",
    "axon_diam (um)",
    "eccentricity",
    "orientation",
    "solidity",
}


def ads(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one of AxonDeepSeg's commands (or its python) from its venv, in `cwd` (it writes
    its axondeepseg.log there)."""
    return subprocess.run(
        [str(VENV / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ads_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def manual_sem(tmp_path: Path, n: int = 2) -> list[tuple[Path, float]]:
    """The first `n` shared SEM images with their manual masks, as AxonDeepSeg folders (masks
    single-channel: one shared label is grey+alpha, which AxonDeepSeg refuses)."""
    if not SEM.is_dir():
        pytest.skip(f"no shared SEM data at {SEM}")
    from axondeepsynth.data import layouts
    from axondeepsynth.data.records import load_sample

    made = []
    for record in layouts.scan(SEM, "SEM").records[:n]:
        sample = load_sample(record)
        folder = tmp_path / record.name
        images.write_png(folder / "image.png", sample.image)
        (folder / "pixel_size_in_micrometer.txt").write_text(f"{sample.pixel_size}\n")
        labels = sample.labels
        images.write_png(folder / "image_seg-axon.png", ((labels == AXON) * 255).astype(np.uint8))
        images.write_png(folder / "image_seg-myelin.png", ((labels == 1) * 255).astype(np.uint8))
        am = np.select([labels == AXON, labels == 1], [255, 127], 0).astype(np.uint8)
        images.write_png(folder / "image_seg-axonmyelin.png", am)
        made.append((folder, sample.pixel_size))
    return made


def test_our_morphometrics_are_axondeepsegs(tmp_path: Path) -> None:
    for folder, pixel_size in manual_sem(tmp_path):
        image = str(folder / "image.png")
        done = ads("axondeepseg_morphometrics", "-i", image, "-f", "ads.csv", cwd=folder)
        assert done.returncode == 0, done.stderr[-2000:]
        (theirs_path,) = folder.glob("*ads.csv")  # it prefixes the image's name
        theirs = ads_csv(theirs_path)
        labels = from_axonmyelin(images.read_mask(folder / "image_seg-axonmyelin.png"))
        ours = morphometrics.measure(labels, pixel_size)
        columns = [c for c in theirs[0] if c]  # its first column is pandas' unnamed index
        assert columns == list(morphometrics.COLUMNS)[: len(columns)]
        assert len(ours) == len(theirs)
        for column in columns:  # axon by axon, in the same order (both label axons alike)
            if column == "image_border_touching":
                continue
            mine = np.array([float(r[column]) for r in ours])
            its = np.array([float(r[column]) for r in theirs])
            same = np.isclose(mine, its, rtol=1e-6, atol=1e-6)
            if column in AXON_ONLY:  # the axon's shapes agree everywhere
                assert same.all(), column
                continue
            # the fibres' of most axons (the myelin between touching fibres is shared out a
            # little differently), and their means to 1e-3 (but for an angle's)
            assert same.mean() >= 0.8, column
            if column != "fiber_orientation":
                assert mine.mean() == pytest.approx(its.mean(), rel=1e-3), column
        border = [r["image_border_touching"] for r in ours]
        assert border == [r["image_border_touching"] == "True" for r in theirs]


def test_our_detection_scores_are_axondeepsegs(tmp_path: Path) -> None:
    (folder, _), *_ = manual_sem(tmp_path, 1)
    truth = images.read_mask(folder / "image_seg-axon.png") > 0
    pred = np.roll(truth, 3, axis=1)  # shifted: some centroids leave their axon
    pred[: pred.shape[0] // 3] = False  # a third missed
    pred[-40:, -40:] = True  # and a false one
    images.write_png(folder / "pred.png", (pred * 255).astype(np.uint8))
    script = (
        "import json, sys, imageio.v2 as io\n"
        "from AxonDeepSeg.testing.segmentation_scoring import score_analysis\n"
        "img, gt, pred = (io.imread(p) for p in sys.argv[1:4])\n"
        "print(json.dumps([float(v) for v in score_analysis(img, gt, pred)]))\n"
    )
    done = ads(
        "python",
        "-c",
        script,
        str(folder / "image.png"),
        str(folder / "image_seg-axon.png"),
        str(folder / "pred.png"),
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sensitivity, precision, diffusion = json.loads(done.stdout.strip().splitlines()[-1])
    ours = detection.scores([detection.counts(pred, truth)])
    assert ours["sensitivity"] == pytest.approx(sensitivity, abs=5e-4)  # it rounds to 3 places
    assert ours["precision"] == pytest.approx(precision, abs=5e-4)
    assert ours["diffusion"] == pytest.approx(diffusion, abs=5e-5)  # to 4 places


def test_axondeepseg_measures_what_segment_writes(tmp_path: Path) -> None:
    cfg = compose_cfg(*RUN, tmp=tmp_path)
    run_stages(cfg)
    u_root = Path(cfg.data.unlabeled.root)
    out = tmp_path / "masks"
    model = Path(cfg.paths.output_dir) / "model"
    assert segment.main([str(model), str(u_root), "--out", str(out), "--axondeepseg"]) == 0
    linked = [p for p in out.rglob("*.png") if p.is_symlink()]
    assert linked
    for image in linked:
        done = ads("axondeepseg_morphometrics", "-i", str(image), "-f", "ads.csv", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert list(image.parent.glob("*ads.csv"))


def test_axondeepseg_loads_a_kept_nnunet_model(tmp_path: Path) -> None:
    """The kept model of a `segmenter.backend=nnunet` run, placed where AxonDeepSeg looks for models
    (`AxonDeepSeg/models/<name>/`: given elsewhere by path it tries to download one), segments
    an image with AxonDeepSeg's own command and its nnU-Net 2.2.1."""
    pytest.importorskip("nnunetv2", reason="the nnU-Net backend: pip install -e '.[nnunet]'")
    from test_nnunet import SHORT

    cfg = compose_cfg(*SHORT, tmp=tmp_path)
    run_stages(cfg)
    kept = Path(cfg.paths.output_dir) / "model"
    meta = json.loads((kept / "model.json").read_text())
    folder = kept / Path(meta["members"][0]["checkpoint"]).parent.parent
    where = "import AxonDeepSeg, pathlib; print(pathlib.Path(AxonDeepSeg.__file__).parent)"
    found = ads("python", "-c", where, cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    placed = Path(found.stdout.strip()) / "models" / f"axondeepsynth_test_{os.getpid()}"
    shutil.copytree(folder, placed)
    try:
        image = next(Path(cfg.data.unlabeled.root).rglob("*_SEM.png"))
        work = tmp_path / "ads"
        work.mkdir()
        shutil.copy(image, work / "image.png")
        done = ads("axondeepseg", "-i", str(work / "image.png"), "-m", str(placed), cwd=work)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        shape = images.read_mask(work / "image.png").shape
        for kind in ("axon", "myelin", "axonmyelin"):
            mask = images.read_mask(work / f"image_seg-{kind}.png")
            assert mask.shape == shape and set(np.unique(mask)) <= {0, 127, 255}
        assert (images.read_mask(work / "image_seg-axonmyelin.png") > 0).any()
    finally:
        shutil.rmtree(placed)
