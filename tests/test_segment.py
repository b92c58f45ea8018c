"""The kept model: exported by a run, applied to images by `python -m axondeepsynth.segment`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
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
    "segmenter.fold=1",
    "segmenter.train.max_epochs=4",
    "segmenter.train.tiles_per_epoch=32",
    "segmenter.train.batch_size=4",
    "segmenter.net.unet={base_channels: 8, depth: 3}",
    "segmenter.net.optimizer=adamw",
    "segmenter.net.lr=3e-3",
    "segmenter.strategies=[direct,adaptation]",
    "export.model=adaptation",  # a translator travels with it
    "segmenter.predict.postprocess.fill_holes=true",  # and the cleaning of its pseudo labels
    "segmenter.predict.postprocess.drop_unmyelinated=true",
    "segmenter.predict.postprocess.myelin_from_image_um=0.16",  # 2 px of myelin grown
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
    assert meta["postprocess"]["myelin_from_image_um"] == pytest.approx(0.16)
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
    # a second run into the same folder finds them done and rewrites nothing
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert segment.main([str(model), str(u_root), "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


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


def _u_copy(finished_run: Path, into: Path) -> Path:
    """A copy of the run's U dataset (phantoms in BIDS, masks included) the test may alter."""
    u_root = Path(compose_cfg(*RUN, tmp=finished_run.parent).data.unlabeled.root)
    shutil.copytree(u_root, into)
    return into


def test_a_stopped_segmentation_continues_and_masks_are_never_read(
    finished_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    data = _u_copy(finished_run, tmp_path / "sem")
    for mask in data.rglob("*_seg-axonmyelin*.png"):  # masks beside the images: not needed
        mask.write_bytes(b"not a png")
    model, out = str(finished_run / "model"), tmp_path / "o"
    real, calls = segment.segment, []

    def stopped_at_the_third(*args) -> None:
        calls.append(args[1].record.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(segment, "segment", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        segment.main([model, str(data), "--out", str(out)])
    monkeypatch.setattr(segment, "segment", real)
    written = sorted(p.name for p in out.rglob("*_seg-axon.png"))
    assert len(written) == 2
    assert segment.main([model, str(data), "--out", str(out)]) == 0  # goes on
    assert "2 images already segmented" in capsys.readouterr().err
    assert len(list(out.rglob("*_seg-axon.png"))) == 4
    # outputs another model (or a person) left there are still never overwritten
    other = tmp_path / "other"
    shutil.copytree(finished_run / "model", other)
    meta = json.loads((other / "model.json").read_text()) | {"fold": 0}
    (other / "model.json").write_text(json.dumps(meta))
    assert segment.main([str(other), str(data), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_an_image_stopped_while_its_masks_were_written_is_written_again(
    finished_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """kill -9 or Ctrl-C between two of an image's outputs: the same model writes them again;
    another model still refuses them."""
    data = _u_copy(finished_run, tmp_path / "sem")
    model, out = str(finished_run / "model"), tmp_path / "o"
    real, written = images.write_png, []

    def stopped_after_two_files(path, array):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(Path(path))
        return real(path, array)

    monkeypatch.setattr(images, "write_png", stopped_after_two_files)
    with pytest.raises(KeyboardInterrupt):
        segment.main([model, str(data), "--out", str(out)])
    monkeypatch.setattr(images, "write_png", real)
    half = written[0].stat().st_mtime_ns
    assert len({p.parent for p in written}) == 1 and not list(out.rglob("*_seg-axonmyelin.png"))
    other = tmp_path / "other"  # a model that did not start those outputs: refused
    shutil.copytree(finished_run / "model", other)
    meta = json.loads((other / "model.json").read_text()) | {"fold": 0}
    (other / "model.json").write_text(json.dumps(meta))
    assert segment.main([str(other), str(data), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert segment.main([model, str(data), "--out", str(out)]) == 0  # the one that did: goes on
    assert len(list(out.rglob("*_seg-axonmyelin.png"))) == 4
    assert written[0].stat().st_mtime_ns > half
    assert json.loads((out / "segment.json").read_text())["writing"] == {}


def test_images_of_another_modality_are_left_out(finished_run: Path, tmp_path: Path, capsys):
    data = _u_copy(finished_run, tmp_path / "mixed")
    for path in next(data.rglob("*_SEM.png")).parent.glob("*_SEM.*"):
        path.rename(path.with_name(path.name.replace("_SEM", "_TEM")))
    out = tmp_path / "o"
    assert segment.main([str(finished_run / "model"), str(data), "--out", str(out)]) == 0
    assert "1 TEM images left out" in capsys.readouterr().err
    names = [p.name for p in out.rglob("*_seg-axon.png")]
    assert len(names) == 3 and all("_SEM" in n for n in names)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--pixel-size", "nan"], "--pixel-size nan"),
        (["--pixel-size", "inf"], "--pixel-size inf"),
        (["--pixel-size", "-1"], "--pixel-size -1"),
        (["--pixel-size", "1e-9"], "--pixel-size 1e-09"),
        (["--device", "cuda"], "no GPU"),
    ],
)
def test_bad_arguments_are_one_line(
    finished_run: Path, tmp_path: Path, capsys, monkeypatch, args, says
) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    image = tmp_path / "img.png"
    images.write_png(image, np.zeros((40, 40)))
    code = segment.main([str(finished_run / "model"), str(image), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0]


def test_empty_inputs_a_nan_sidecar_and_a_broken_model_are_one_line(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    model = str(finished_run / "model")
    (tmp_path / "empty").mkdir()
    assert segment.main([model, str(tmp_path / "empty")]) == 2
    assert "no images to segment" in capsys.readouterr().err
    images.write_png(tmp_path / "nan" / "img.png", np.zeros((40, 40)))
    (tmp_path / "nan" / "pixel_size_in_micrometer.txt").write_text("nan")
    assert segment.main([model, str(tmp_path / "nan" / "img.png")]) == 2
    assert "pixel_size_in_micrometer.txt: nan is not a pixel size" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(finished_run / "model", broken)
    (broken / "model.json").write_text("{")
    assert segment.main([str(broken), str(tmp_path / "nan" / "img.png")]) == 2
    err = capsys.readouterr().err
    assert "model.json: not JSON" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "edit, says",
    [
        ({"pixel_size_um": 0}, "pixel_size_um is 0"),
        ({"pixel_size_um": "0.1"}, "pixel_size_um is '0.1'"),
        ({"tile": 0}, "tile is 0"),
        ({"tile": None}, "tile is None"),
        ({"members": []}, "no members"),
        ({"members": [{"checkpoint": "gone.ckpt", "input": "U"}]}, "gone.ckpt is missing"),
    ],
)
def test_an_edited_model_json_is_one_line(
    finished_run: Path, tmp_path: Path, capsys, edit: dict, says: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(finished_run / "model", model)
    meta = json.loads((model / "model.json").read_text()) | edit
    (model / "model.json").write_text(json.dumps(meta))
    image = tmp_path / "img.png"
    images.write_png(image, np.zeros((40, 40)))
    assert segment.main([str(model), str(image), "--pixel-size", "0.1"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_axondeepseg_folders_hold_the_image_link_and_its_pixel_size(
    finished_run: Path, tmp_path: Path
) -> None:
    image = tmp_path / "in" / "field.png"
    images.write_png(image, np.random.default_rng(0).random((60, 60)))
    out = tmp_path / "o"
    code = segment.main(
        [str(finished_run / "model"), str(image), "--out", str(out), "--pixel-size", "0.07"]
        + ["--axondeepseg"]
    )
    assert code == 0
    folder = out / "field"
    assert (folder / "field.png").resolve() == image.resolve()
    assert float((folder / "pixel_size_in_micrometer.txt").read_text()) == pytest.approx(0.07)
    for kind in ("axon", "myelin", "axonmyelin"):  # single-channel 8-bit, as AxonDeepSeg reads
        mask = cv2.imread(str(folder / f"field_seg-{kind}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.ndim == 2 and mask.shape == (60, 60)


class Smooth(segment.KeptModel):
    """A model whose answer at a pixel depends on the 20 px around it only: three classes by
    the blurred intensity."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        blurred = cv2.GaussianBlur(image, (0, 0), 2)
        logits = -50 * np.stack([(blurred - c) ** 2 for c in (0.2, 0.5, 0.8)])
        odds = np.exp(logits - logits.max(0))
        return odds / odds.sum(0)


def test_a_mosaic_is_segmented_block_by_block_in_memory_that_follows_the_block(
    finished_run: Path, tmp_path: Path
) -> None:
    import tracemalloc

    u_root = Path(compose_cfg(*RUN, tmp=finished_run.parent).data.unlabeled.root)
    fields = [images.read_image(r.image) for r in layouts.scan(u_root).records]
    mosaic = np.block([[fields[(i + j) % 4] for j in range(8)] for i in range(8)])  # 1024² px
    path = images.write_png(tmp_path / "mosaic.png", mosaic)
    (tmp_path / "pixel_size_in_micrometer.txt").write_text("0.04\n")  # the model's is 0.08
    (job,) = segment.find_images([path], tmp_path / "out", None)
    local = Smooth(json.loads((finished_run / "model" / "model.json").read_text()))
    peaks, masks = {}, {}
    for block in (4096, 128):  # one block (the image whole), and 16 blocks of 128 model px
        out = tmp_path / f"block{block}"
        tracemalloc.start()
        segment.segment(local, segment.Job(job.record, out), None, block=block)
        peaks[block] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        masks[block] = images.read_mask(out / "mosaic_seg-axonmyelin.png")
        assert masks[block].shape == (1024, 1024)
    assert len(np.unique(masks[4096])) == 3
    assert np.array_equal(masks[128], masks[4096])  # each block read with enough context
    assert peaks[128] < 0.5 * peaks[4096]  # memory follows the block, not the image
    # the kept model itself, translator and cleaning included, by blocks
    out = tmp_path / "kept"
    segment.segment(segment.KeptModel(finished_run / "model"), segment.Job(job.record, out),
                    None, block=128)  # fmt: skip
    found = from_axonmyelin(images.read_mask(out / "mosaic_seg-axonmyelin.png"))
    assert found.shape == (1024, 1024) and 0.05 < (found > 0).mean() < 0.95
    assert images.read_mask(out / "mosaic_confidence.png").min() > 0
