"""Stage `train_segmenter`: train the segmentation proxy on each training set and fold.

The training sets are those of the chosen strategies (`strategies.TRAINING_SETS`): `L` (real
labelled images), `L2U` (L translated into U's look, carrying L's labels) and `U` (U's own
labelled images, for the oracle, scored on its held-out fold). Folds split each set by subject.
The proxy is our Lightning U-Net (`segmenter.backend=lightning`) or nnU-Net v2 (`nnunet`): a
training set is then one nnU-Net dataset, planned and preprocessed once under
`seg/<set>/nnunet/`, and each fold trains there on the same split (`seg/<set>/fold<k>/split.json`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytorch_lightning as pl
import torch

from axondeepsynth.config import Config
from axondeepsynth.data.datamodules import SegmentationDataModule
from axondeepsynth.data.folds import splits
from axondeepsynth.data.labels import IGNORE
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.io import write_text
from axondeepsynth.pipeline import keys
from axondeepsynth.pipeline.context import ENSEMBLE, NnUNetDataset, Run, SegmenterCheckpoints
from axondeepsynth.pipeline.stage_dir import once
from axondeepsynth.pipeline.trainer import build_trainer, resume_from
from axondeepsynth.strategies import STRATEGIES, TRAINING_SETS
from axondeepsynth.training.segmenter import Segmenter

log = logging.getLogger(__name__)
R = TypeVar("R")


def training_samples(
    run: Run, train_set: str, teacher: str | None = None
) -> tuple[list[Sample], str]:
    """The labelled samples of a training set and a string naming where they came from (of
    pseudo labels: `teacher`'s)."""
    kind = TRAINING_SETS[train_set]
    if kind.pseudo:
        samples, origin = pseudo_labelled(run, teacher)
    elif kind.translation is None:
        samples = run.domain(kind.labels_from)
        origin = run.domain_config(kind.labels_from).describe()
    else:  # validate() put the translate stage before this one
        roots = run.outputs.translations[kind.translation].roots
        samples, origin = run.dataset(roots, train_set), ", ".join(roots)
    labelled = [s for s in samples if s.labels is not None]
    if len(labelled) < len(samples):
        log.warning(
            "%s: %d of %d images have no labels and are left out of segmentation training",
            origin,
            len(samples) - len(labelled),
            len(samples),
        )
    if not labelled:
        users = [s.name for s in run.strategies if train_set in s.train_sets]
        raise ConfigError(
            "data.unlabeled" if kind.labels_from == "U" else "data.labeled",
            f"no labelled images in {origin}",
            f"{', '.join(users)} train on domain {kind.labels_from}'s *_seg-axon/myelin masks: "
            "add them or drop these from segmenter.strategies",
        )
    k = run.cfg.segmenter.k
    if k > 1 and len(labelled) < k:
        raise ConfigError(
            "segmenter.k",
            f"{len(labelled)} labelled images in {origin} cannot make {k} folds",
            "lower segmenter.k (segmenter.k=1 trains on all of them)",
        )
    subjects = len({s.group for s in labelled})
    if kind.labels_from == "U" and k > 1 and subjects < k:  # scored on the folds it holds out
        raise ConfigError(
            "segmenter.k",
            f"{origin} holds {subjects} subjects: {k} folds would put images of one subject on "
            "both sides, and score the held-out folds on subjects the proxy trained on",
            f"use segmenter.k={subjects} or fewer, or add subjects",
        )
    return labelled, origin


def pseudo_labelled(run: Run, teacher: str) -> tuple[list[Sample], str]:
    """U's images with the teacher's pseudo labels (of its ensemble, else of the first fold:
    evaluate wrote them), `IGNORE` where its confidence is below
    `self_train.min_confidence`, brought to the working scale like U's images; the origin
    names them by their content, so the proxies' keys follow the labels and nothing else."""
    part = run.handed_on(STRATEGIES[teacher])
    least = run.cfg.self_train.min_confidence
    samples, digest = [], hashlib.sha1()
    for sample in run.domain("U"):
        pseudo = run.pseudo_labels(teacher, part, sample.key)
        if least > 0:
            confidence = run.pseudo_confidence(teacher, part, sample.key)
            pseudo = np.where(confidence < least, IGNORE, pseudo).astype(np.uint8)
        digest.update(pseudo.tobytes())
        size = sample.image.shape[::-1]
        labels = cv2.resize(pseudo, size, interpolation=cv2.INTER_NEAREST)
        samples.append(replace(sample, labels=labels))
    which = part if part == ENSEMBLE else f"fold {part}"  # as before ensembles: keys kept
    return samples, f"{teacher} pseudo labels of {which} ({digest.hexdigest()[:12]})"


def run(run: Run) -> None:
    """Train every training set of the chosen strategies but those of pseudo labels, which
    stage self_train trains once their teacher has made them (`train`)."""
    sets = dict.fromkeys(t for strategy in run.strategies for t in strategy.train_sets)
    train(run, [t for t in sets if not TRAINING_SETS[t].pseudo])


def train(run: Run, train_sets: list[str], teacher: str | None = None) -> None:
    """Train the proxies of `train_sets`, one per fold (each made once: `done.json`); those of
    pseudo labels learn from `teacher`'s. With `segmenter.train.processes` > 1, that many
    proxies train at once, each in a process of its own (`ProxyPool`)."""
    jobs = []
    for train_set in train_sets:
        samples, origin = training_samples(run, train_set, teacher)
        nnunet = _nnunet_trainer(run, train_set, samples, origin)
        jobs += [(train_set, fold, samples, origin, nnunet) for fold in run.folds]
    with ProxyPool(run.cfg, len(jobs)) as pool:

        def made(job: tuple) -> SegmenterCheckpoints:
            train_set, fold, samples, origin, nnunet = job
            root = run.proxy_dir(train_set, fold)
            if nnunet:
                fit = lambda: nnunet(samples, fold, root)  # noqa: E731
            else:
                fit = lambda: pool.fit(samples, fold, root)  # noqa: E731
            return once(root, keys.segmenter(run.cfg, origin, fold), fit, SegmenterCheckpoints)

        for (train_set, fold, *_), checkpoints in zip(jobs, pool.map(made, jobs), strict=True):
            run.outputs.segmenters[train_set, fold] = checkpoints


def _nnunet_trainer(run: Run, train_set: str, samples: list[Sample], origin: str):
    """With `segmenter.backend=nnunet`, the nnU-Net dataset of a training set (made once: raw,
    plans, preprocessed data, the folds' split) and a function that trains one of its folds;
    None with the Lightning proxy."""
    if run.cfg.segmenter.backend != "nnunet":
        return None
    from axondeepsynth.training import nnunet

    cfg = run.cfg
    base = run.proxy_dir(train_set)
    folds = splits(samples, cfg.segmenter.k, cfg.seed)
    keyed = [{part: [s.key for s in fold[part]] for part in fold} for fold in folds]
    dataset = once(
        base,
        keys.nnunet_dataset(cfg, origin),
        lambda: NnUNetDataset(
            *nnunet.prepare(samples, base, train_set, keyed, cfg.segmenter.nnunet)
        ),
        NnUNetDataset,
    )

    def fit_fold(samples: list[Sample], fold: int, root: Path) -> SegmenterCheckpoints:
        split = {"fold": fold, "k": cfg.segmenter.k, "seed": cfg.seed, **keyed[fold]}
        write_text(root / "split.json", json.dumps(split, indent=2))
        pl.seed_everything(cfg.seed + fold, workers=True, verbose=False)
        out, val = nnunet.train(
            base,
            dataset.name,
            dataset.plans,
            fold,
            cfg.segmenter.nnunet,
            run.device,
            resume=cfg.resume == "last",
            results=root / "nnunet",  # under the fold's key: a removed fold takes its weights
        )
        log.info("nnU-Net %s fold %d: val/dice_mean %.3f", train_set, fold, val["val/dice_mean"])
        last, best = out / "checkpoint_final.pth", out / "checkpoint_best.pth"
        return SegmenterCheckpoints(
            last=str(last), best=str(best if best.is_file() else last), val=val
        )

    return fit_fold


def proxy_trainer(cfg: Config, root: Path, **overrides) -> pl.Trainer:
    """The proxies' trainer: `trainer.*` with their own epochs and, when set, precision."""
    t = cfg.segmenter.train
    own = {"precision": t.precision} if t.precision else {}
    return build_trainer(
        cfg, root, "val/dice_mean", "max", max_epochs=t.max_epochs, **own | overrides
    )


def fit(
    cfg: Config, samples: list[Sample], fold: int, root: Path, **trainer: Any
) -> SegmenterCheckpoints:
    """Train the Lightning proxy of one fold under `root` (`trainer`: overrides)."""
    seg = cfg.segmenter
    pl.seed_everything(cfg.seed + fold, workers=True, verbose=False)
    dm = SegmentationDataModule(
        seg.data,
        seg.train.batch_size,
        seg.train.tiles_per_epoch,
        cfg.seed,
        samples,
        fold,
        seg.k,
        root / "split.json",
        seg.net.normalize,
    )
    module = Segmenter(seg.net)
    trainer = proxy_trainer(cfg, root, **trainer)
    # resume=last resumes the fold from its newest readable last.ckpt or interrupted.ckpt
    resume = resume_from(root / "checkpoints") if cfg.resume == "last" else None
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
    last = str(root / "checkpoints" / "last.ckpt")
    best = trainer.checkpoint_callback.best_model_path or last
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return SegmenterCheckpoints(last=last, best=best, val=val)


class ProxyPool:
    """Where Lightning proxies are fitted: here, one after another, or, with
    `segmenter.train.processes` = n > 1, n at a time, each in a spawned process with this
    process's torch threads shared out between them (on 2 cores, two proxies of one thread
    each trained 1.29x as many proxies per minute as one of two threads: benchmarks/README.md).
    A stopped run stops its workers (`map`); a killed one takes them with it."""

    def __init__(self, cfg: Config, jobs: int) -> None:
        self.cfg = cfg
        self.n = min(cfg.segmenter.train.processes, jobs)
        self.cores = torch.get_num_threads()
        self.threads = max(1, self.cores // self.n)  # each worker's, for the jobs now running
        self.processes: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProxyPool:
        if self.n > 1:
            self.processes = ProcessPoolExecutor(self.n, get_context("spawn"), initializer=_worker)
            # started here, from this thread: a worker dies with the thread that started it
            for started in [self.processes.submit(int) for _ in range(self.n)]:
                started.result()
            log.info("training %d proxies at a time, %d torch thread(s) each", self.n, self.threads)
        return self

    def __exit__(self, *exc) -> None:
        if self.processes is not None:
            self.processes.shutdown(cancel_futures=True)

    def map(self, made: Callable[[tuple], R], jobs: list[tuple]) -> list[R]:
        """`made(job)` of every job, in order; n at a time when there are processes (each
        thread here claims its stage directory and waits on its process), the last fewer ones
        with more threads each. Stopped (SIGTERM, Ctrl-C, a failed proxy), the others finish
        their batch, save and stop, as one would."""
        if self.processes is None:
            return [made(job) for job in jobs]
        threads, out = ThreadPoolExecutor(self.n), []
        try:
            for start in range(0, len(jobs), self.n):
                chunk = jobs[start : start + self.n]
                self.threads = max(1, self.cores // len(chunk))
                out += threads.map(made, chunk)
            return out
        except BaseException:
            for process in self.processes._processes.values():  # noqa: SLF001 - its workers
                process.terminate()
            raise
        finally:
            threads.shutdown(cancel_futures=True)

    def fit(self, samples: list[Sample], fold: int, root: Path) -> SegmenterCheckpoints:
        if self.processes is None:
            out = fit(self.cfg, samples, fold, root)
        else:  # several progress bars would garble one terminal: each fold logs its end
            job = (self.cfg, samples, fold, root)
            out = self.processes.submit(_fit_in_worker, self.threads, *job).result()
        dice = out.val.get("val/dice_mean", float("nan"))
        log.info("segmenter %s fold %d: val/dice_mean %.3f", root.parent.name, fold, dice)
        return out


def _worker() -> None:
    """A proxy process: Ctrl-C is the run's to pass on (`ProxyPool.map`), and it is killed with
    the run (kill -9), as it would have been inside it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _fit_in_worker(threads: int, *job) -> SegmenterCheckpoints:
    torch.set_num_threads(threads)
    return fit(*job, enable_progress_bar=False, enable_model_summary=False)
