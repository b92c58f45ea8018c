"""The kept model: exported by a run, applied to images by `python -m axondeepsynth.segment`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN, compose_cfg, overridden

from axondeepsynth import segment
from axondeepsynth.data import images, layouts
from axondeepsynth.data.labels import from_axonmyelin
from axondeepsynth.data.records import load_sample
from axondeepsynth.training.segmenter import dice_per_class

RUN = overridden(
    TINY_RUN,
    "data.labeled.phantom.size=128",
    "data.unlabeled.phantom.size=128",  # 64 px at the working 0.08 µm/px
    "data.target_pixel_size=0.08",
    "seg.fold=1",
    "seg.max_epochs=4",
    "seg.tiles_per_epoch=32",
    "seg.batch_size=4",
    "seg.net.unet={base_channels: 8, depth: 3}",
    "seg.net.optimizer=adamw",
    "seg.net.lr=3e-3",
    "seg.strategies=[direct,adaptation]",
    "seg.export=adaptation",  # a translator travels with it
    "seg.postprocess.fill_holes=true",  # and the cleaning of its pseudo labels
    "seg.postprocess.drop_unmyelinated=true",
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from axondeepsynth.pipeline import run_stages

    tmp = tmp_path_factory.mktemp("run")
    cfg = compose_cfg(*RUN, tmp=tmp)
    run_stages(cfg)
    return Path(cfg.paths.output_dir)


def test_the_kept_model_reproduces_the_runs_dice(finished_run: Path, tmp_path: Path) -> None:
    model = finished_run / "model"
    meta = json.loads((model / "model.json").read_text())
    assert meta["strategy"] == "adaptation" and meta["fold"] == 1
    assert meta["pixel_size_um"] == pytest.approx(0.08) and meta["translator"]
    assert meta["postprocess"]["drop_unmyelinated"] and meta["postprocess"]["fill_holes"]
    u_root = Path(compose_cfg(*RUN, tmp=finished_run.parent).data.unlabeled.root)
    out = tmp_path / "masks"
    assert segment.main([str(model), str(u_root), "--out", str(out)]) == 0
    reported = json.loads((finished_run / "results.json").read_text())
    per_image = reported["strategies"]["adaptation"]["folds"]["1"]["per_image"]
    records = layouts.scan(u_root).records
    assert len(per_image) == len(records) == 4
    for record in records:
        found = list(out.rglob(f"{record.name}_seg-axonmyelin.png"))
        assert len(found) == 1 and found[0].parent.parent.parent.name == "SEM"  # the input's tree
        pred = from_axonmyelin(images.read_mask(found[0]))
        written = finished_run / "pseudo_labels" / "adaptation" / "fold1" / found[0].name
        assert (pred == from_axonmyelin(images.read_mask(written))).mean() > 0.999
        assert (pred > 0).mean() > 0.05  # a real segmentation, not an empty one
        dice = dice_per_class(pred, load_sample(record).labels)
        for c in ("axon", "myelin"):
            assert dice[c] == pytest.approx(per_image[record.name][c], abs=1e-3)
    # a second run into the same folder overwrites nothing
    assert segment.main([str(model), str(u_root), "--out", str(out)]) == 2


def test_an_image_without_a_pixel_size_is_refused_in_one_line(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    bare = tmp_path / "new.png"
    images.write_png(bare, np.random.default_rng(0).random((80, 80)))
    assert segment.main([str(finished_run / "model"), str(bare), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bare) in err[0] and "--pixel-size" in err[0]
    assert not (tmp_path / "o").exists()
    code = segment.main(
        [
            str(finished_run / "model"),
            str(bare),
            "--out",
            str(tmp_path / "o"),
            "--pixel-size",
            "0.05",
        ]
    )
    assert code == 0 and (tmp_path / "o" / "new_seg-axon.png").is_file()
    mask = images.read_mask(tmp_path / "o" / "new_seg-axonmyelin.png")
    assert mask.shape == (80, 80) and set(np.unique(mask)) <= {0, 127, 255}


def test_two_images_that_would_write_the_same_masks_are_refused(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    for folder in ("a", "b"):
        images.write_png(tmp_path / folder / "img.png", np.zeros((40, 40)))
    args = [str(tmp_path / "a" / "img.png"), str(tmp_path / "b" / "img.png"), "--pixel-size", "0.1"]
    out = tmp_path / "o"
    assert segment.main([str(finished_run / "model"), *args, "--out", str(out)]) == 2
    assert "would overwrite" in capsys.readouterr().err and not out.exists()
