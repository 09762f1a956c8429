"""The folder of a training run, and the rules that keep a finished run from being lost.

A run folder holds ``config.yaml``, ``log.jsonl``, ``summary.json``, the weights
(``model.safetensors``), the training state (``model.train.safetensors``) and ``samples/``.
:func:`dlib.train.train` calls :func:`check` before it loads anything (it only reads the folder)
and :func:`prepare` once the config, schedule, model and data are known to be good, so an error
never leaves a folder half rewritten:

* a folder that holds a run is refused unless the run is resumed (``--resume``) or replaced
  (``--overwrite``, which deletes the old run's files and nothing else);
* resuming a folder that holds weights but no training state is refused (there is nothing to
  continue, and training from scratch would replace the weights).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from .checkpoint import train_state_path

CHECKPOINT_NAME = "model.safetensors"
#: The files (and the ``samples`` folder) a run writes; ``--overwrite`` deletes these and nothing else.
RUN_FILES = ("config.yaml", "log.jsonl", "summary.json", CHECKPOINT_NAME,
             train_state_path(Path(CHECKPOINT_NAME)).name, "samples")
#: Config keys a resumed run may change (they do not change what is computed).
RESUMABLE_CHANGES = ("steps", "minutes", "out_dir", "checkpoint_every", "sample_every", "log_every", "n_samples",
                     "sample_steps", "sampler", "device")
#: Config keys added after runs were published, with the value every earlier run implicitly had.
ADDED_KEYS = {"lr_schedule": "constant", "minutes": None, "t_min": 1, "t_sampling": "uniform", "t_logsnr_mean": 2.4,
              "t_logsnr_std": 2.4, "adam_beta2": 0.999}


def run_files(out: Path) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``out`` (empty when ``out`` does not exist)."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def check(out, resume: bool, overwrite: bool) -> None:
    """Refuse a run folder that training would damage; reads the folder, writes nothing.

    Args:
        out: the run folder (may not exist yet).
        resume: the run is to be continued from its training state.
        overwrite: an existing run may be replaced (its files are deleted by :func:`prepare`).
    Raises:
        ValueError: ``resume`` and ``overwrite`` together; ``out`` is a file; ``out`` holds a run
            and neither flag is given; ``resume`` on a folder with weights but no training state.
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite deletes it: pass one of them, not both")
    if out.exists() and not out.is_dir():
        raise ValueError(f"the run folder {out} is a file; choose another --out")
    found = run_files(out)
    if not found or overwrite:
        return
    if resume:
        if CHECKPOINT_NAME in found and not train_state_path(out / CHECKPOINT_NAME).is_file():
            raise ValueError(f"cannot resume {out}: it holds {CHECKPOINT_NAME} but no training state to continue "
                             f"from; pass --overwrite to train again from scratch, or choose another --out")
        return
    raise ValueError(f"the folder {out} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                     f"--overwrite to delete it and start again, or choose another --out")


def config_differences(stored: dict, wanted: dict) -> list[str]:
    """The config keys (but :data:`RESUMABLE_CHANGES`) whose values differ between two config dicts.

    A key of :data:`ADDED_KEYS` missing from one side counts as its old implicit value, so a run
    started before the key existed can be resumed.
    """
    stored, wanted = {**ADDED_KEYS, **stored}, {**ADDED_KEYS, **wanted}
    return [k for k in sorted(set(stored) | set(wanted))
            if k not in RESUMABLE_CHANGES and stored.get(k) != wanted.get(k)]


def trim_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (written by a run that crashed after its last checkpoint)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


def prepare(out, config: dict, start: int, overwrite: bool) -> None:
    """Make the run folder ready to train from step ``start``; call only after :func:`check` and validation.

    Creates ``out``; with ``overwrite`` deletes the old run's :data:`RUN_FILES`; writes
    ``config.yaml``; keeps the log up to ``start`` (a resumed run) or starts it afresh.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in run_files(out):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = out / "log.jsonl"
    if start:
        trim_log(log_path, start)
    elif log_path.exists():
        log_path.unlink()
