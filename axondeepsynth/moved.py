"""Keys and config groups of the old layout, each refused with one line that names its new place
(`model.lr_g is now translator.train.lr_g`): on the command line and in the experiment file it
picks, read by the entry point before Hydra composes. Imports no torch."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from axondeepsynth.errors import ConfigError

_TRANSLATOR_NET = ("diffusive", "resnet", "time_disc", "patch_disc", "diffusion")
_TRANSLATOR_TRAIN = (
    "lambda_l1", "lambda_struct", "r1_gamma", "lazy_reg", "lr_g", "lr_d", "betas", "lr_min",
    "lr_decay", "ema_decay", "reuse_generator_pass", "sampler", "monitor", "monitor_mode",
    "recompute", "channels_last", "compile", "panel_every_n_epochs",
)  # fmt: skip
_SAMPLE = (
    "ckpt_path", "dir", "directions", "sampler", "batch_size", "precision", "compile", "seed",
    "samples",
)  # fmt: skip

# old key (or prefix) -> its new place; the longest matching prefix wins
KEYS: dict[str, str] = {
    "ckpt_path": "resume",
    "model": "translator",
    "model.name": "translator.name",
    **{f"model.{k}": f"translator.net.{k}" for k in _TRANSLATOR_NET},
    **{f"model.{k}": f"translator.train.{k}" for k in _TRANSLATOR_TRAIN},
    "trainer.max_epochs": "translator.train.max_epochs (the segmenter's: segmenter.train)",
    **{f"translator.{k}": f"translator.sample.{k}" for k in _SAMPLE},
    "translator.checkpoint": "translator.sample.which",
    "data.tile_size": "translator.data.tile_size (the segmenter's: segmenter.data.tile_size)",
    "data.tile_overlap": "translator.sample.tile_overlap (segmenter.predict.tile_overlap)",
    "data.batch_size": "translator.train.batch_size",
    "data.tiles_per_epoch": "translator.train.tiles_per_epoch",
    "data.val_images": "translator.data.val_images",
    "data.geometric_aug": "translator.data.geometric_aug",
    "data.rot90": "translator.data.rot90",
    **{
        f"data.{k}": f"translator.data.{k} (and segmenter.data.{k})"
        for k in ("num_workers", "val_tiles_per_image", "tile_draw")
    },
    "seg": "segmenter",
    "seg.tile_size": "segmenter.data.tile_size",
    "seg.augment": "segmenter.data.augment",
    **{f"seg.{k}": f"segmenter.train.{k}" for k in ("max_epochs", "tiles_per_epoch", "batch_size")},
    **{f"seg.{k}": f"segmenter.predict.{k}" for k in ("tile_overlap", "ensemble", "postprocess")},
    "seg.n_overlays": "segmenter.predict.n_overlays",
    "seg.checkpoint": "segmenter.predict.which",
    "seg.predict_batch_size": "segmenter.predict.batch_size",
    "seg.net.tta_flips": "segmenter.predict.tta_flips",
    "seg.net.window": "segmenter.predict.window",
    "seg.self_train_from": "self_train.teacher",
    "seg.self_train_min_confidence": "self_train.min_confidence",
    "seg.export": "export.model",
    "seg.export_fold": "export.fold",
    "seg.export_nnunet": "export.nnunet",
}
# old config group -> its new one (`model=cyclegan_tiny` is now `translator=cyclegan_tiny`)
GROUPS = {"model": "translator"}


def new_place(key: str) -> str | None:
    """Where an old key lives now, keeping the part below the matched prefix; None if it is not
    an old key."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in KEYS:
            new, rest = KEYS[prefix], parts[n:]
            return ".".join([new, *rest]) if rest and "(" not in new else new
    return None


def refuse_overrides(overrides: list[str], conf_dir: Path | None = None) -> None:
    """Refuse a command-line override of the old layout (`model.lr_g=1e-4`, `model=cyclegan`,
    `+seg.k=3`), naming its new place; and the experiment file it picks in `conf_dir`."""
    for arg in overrides:
        if "=" not in arg or arg.startswith("hydra"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key == "experiment" and conf_dir is not None:
            for name in value.split(","):  # a sweep over experiments
                refuse_file(conf_dir / "experiment" / f"{name}.yaml")
        elif key in GROUPS:
            raise ConfigError(
                key, f"the config group {key} is now {GROUPS[key]}", f"pass {GROUPS[key]}={value}"
            )
        elif (new := new_place(key)) is not None:
            raise ConfigError(key, f"{key} is now {new}", f"pass {new.split(' ')[0]}={value}")


def refuse_file(path: Path) -> None:
    """Refuse a config file (an experiment) that sets a key or overrides a group of the old
    layout, naming the file, the key and its new place."""
    if not path.is_file():
        return  # Hydra names what it cannot find
    content = OmegaConf.to_container(OmegaConf.load(path)) or {}
    for entry in content.pop("defaults", []):
        group = next(iter(entry)) if isinstance(entry, dict) else ""
        old = group.removeprefix("override ").strip("/ ")
        if old in GROUPS:
            raise ConfigError(
                old,
                f"{path}: the config group {old} is now {GROUPS[old]}",
                f"write `override /{GROUPS[old]}: {entry[group]}`",
            )
    for key in _keys(content):
        if (new := new_place(key)) is not None:
            raise ConfigError(key, f"{path}: {key} is now {new}", "move it there in that file")


def _keys(tree: dict, prefix: str = "") -> list[str]:
    """The dotted keys of a nested mapping's leaves."""
    out = []
    for name, value in tree.items():
        key = f"{prefix}{name}"
        out += _keys(value, key + ".") if isinstance(value, dict) and value else [key]
    return out
