"""Shared fixtures: the real data beside the checkout, and small datasets built on the fly."""

from __future__ import annotations

import json
import os
from pathlib import Path

# two threads per process unless the caller pinned others, set before torch starts its pools and
# inherited by the CLI runs the tests spawn: on a 2-core machine oversubscribed OpenMP made one
# fit 35x slower
THREADS = os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", THREADS)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

torch.set_num_threads(int(THREADS))

from axondeepsynth import pipeline  # noqa: E402
from axondeepsynth.config import Config, register  # noqa: E402
from axondeepsynth.moved import refuse_overrides  # noqa: E402
from axondeepsynth.validation import validate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AXONDEEPSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))
register()


# a whole pipeline run on the phantoms in seconds, in process
TINY_RUN = (
    "+experiment=demo",
    "logger=none",
    "data.labeled.phantom.n_images=4",
    "data.labeled.phantom.size=64",
    "data.unlabeled.phantom.n_images=4",
    "data.unlabeled.phantom.size=64",
    "data.target_pixel_size=null",
    "translator.data.tile_size=32",
    "translator.sample.tile_overlap=8",
    "segmenter.data.tile_size=32",
    "segmenter.predict.tile_overlap=8",
    "translator.train.tiles_per_epoch=4",
    "translator.train.batch_size=2",
    "translator.data.val_tiles_per_image=1",
    "segmenter.data.val_tiles_per_image=1",
    "translator.train.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "segmenter.k=2",
    "segmenter.fold=0",
    "segmenter.train.max_epochs=1",
    "segmenter.train.tiles_per_epoch=4",
    "segmenter.train.batch_size=2",
    "segmenter.net.unet={base_channels: 4, depth: 3}",
)


def overridden(base: tuple[str, ...], *changes: str) -> tuple[str, ...]:
    """`base`'s overrides with those of `changes` in place of the same keys (Hydra takes a key
    once)."""
    keys = {c.split("=", 1)[0] for c in changes}
    return (*(o for o in base if o.split("=", 1)[0] not in keys), *changes)


def compose_cfg(*overrides: str, tmp: Path = Path("/tmp/ads")) -> Config:
    """The validated config a user would get from `python -m axondeepsynth.run OVERRIDES`."""
    refuse_overrides(list(overrides), REPO / "conf")
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config", [f"paths.root_dir={tmp}", f"paths.output_dir={tmp}/out", *overrides]
        )
    config = validate(cfg)
    pipeline.check(config)
    return config


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip when this checkout has none beside it."""
    if not (SHARED / "sem").is_dir():
        pytest.skip(f"real data not found at {SHARED}")
    return SHARED


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def tiny_bids(tmp_path: Path) -> Path:
    """Two SEM samples of one subject: a subject-level sidecar plus one sample-level override."""
    root = tmp_path / "bids"
    write_json(root / "dataset_description.json", {"Name": "tiny", "BIDSVersion": "1.9.0"})
    micr = root / "sub-a" / "micr"
    rng = np.random.default_rng(0)
    for sample in ("s1", "s2"):
        write_png(
            micr / f"sub-a_sample-{sample}_SEM.png", rng.integers(0, 255, (40, 50), dtype=np.uint8)
        )
        labels = np.zeros((40, 50), np.uint8)
        labels[5:15, 5:15], labels[8:12, 8:12] = 127, 255
        write_png(
            root
            / "derivatives/labels/sub-a/micr"
            / f"sub-a_sample-{sample}_SEM_seg-axonmyelin-manual.png",
            labels,
        )
    write_json(micr / "sub-a_SEM.json", {"PixelSize": [0.1, 0.1], "PixelSizeUnits": "um"})
    write_json(micr / "sub-a_sample-s2_SEM.json", {"PixelSize": [20, 20], "PixelSizeUnits": "nm"})
    return root


def saved_translator(model, path: Path, tile: int) -> Path:
    """A translator checkpoint as Lightning writes it, after one batch of random tiles."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from axondeepsynth.training import translators

    module = translators.build(model)
    batch = [{"x_l": torch.rand(1, tile, tile), "x_u": torch.rand(1, tile, tile)}]
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(path.parent),
    )
    trainer.fit(module, DataLoader(batch, batch_size=1))
    trainer.save_checkpoint(path)
    return path


class StandInPredictions:
    """`evaluate.Predictions` made by stand-in models: [(model, its inputs per U image)]."""

    def __init__(self, models: list) -> None:
        self.models = models

    def members(self, strategy, fold: int) -> list[tuple[str, str]]:
        return [(str(k), "") for k in range(len(self.models))]

    def of(self, ckpt: str, shown: str, i: int) -> np.ndarray:
        model, inputs = self.models[int(ckpt)]
        return np.mean([model.predict_proba(x) for x in inputs[i]], axis=0)
