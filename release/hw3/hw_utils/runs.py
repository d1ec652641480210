"""Experiment folders (results/00, results/01, ...): resume the unfinished one, list, clean up.

    save_path = next_run("results", model_config, train_config)   # the folder for this experiment
    list_runs("results")                                          # what each folder holds
    remove_runs("results")                                        # drop runs that never finished, renumber the rest
    remove_runs("results", ["03"])                                # drop run 03 (and unfinished ones), renumber

A run folder holds model_config.yaml, train_config.yaml and what train() writes
(checkpoints/last.pt after each epoch, results.pkl, learning_curves.png). Its
state, read from those files without loading any weights:
    finished    results.pkl says epoch == n_epochs
    unfinished  at least one epoch saved (checkpoints/last.pt), not finished: train() resumes it
    empty       no epoch saved (stopped in the first epoch, or train() refused its arguments)
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from .io import load_pickle, load_yaml, save_yaml


@dataclass(frozen=True)
class RunInfo:
    name: str          # the folder's name, two digits
    state: str         # finished | unfinished | empty
    epoch: int         # epochs completed (as results.pkl last recorded them)
    n_epochs: int | None
    test_acc: float | None


def _plain(config: dict) -> dict:
    """A config as it reads back from YAML (tuples become lists), for comparisons."""
    return yaml.safe_load(yaml.safe_dump(dict(config), sort_keys=False))


def run_names(results_dir) -> list[str]:
    """The numbered run folders of `results_dir`, in order."""
    folder = Path(results_dir)
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=int)


def run_info(results_dir, name: str) -> RunInfo:
    folder = Path(results_dir) / name
    results = {}
    if (folder / "results.pkl").is_file():
        try:
            results = load_pickle(folder / "results.pkl")
        except Exception:  # a results file from elsewhere: treat the run as unfinished
            results = {}
    epoch, n_epochs = int(results.get("epoch", 0)), results.get("n_epochs")
    accs = results.get("test_accs") or [None]
    if n_epochs is not None and epoch >= n_epochs:
        state = "finished"
    elif (folder / "checkpoints" / "last.pt").is_file():
        state = "unfinished"
    else:
        state = "empty"
    return RunInfo(name, state, epoch, n_epochs, accs[-1])


def next_run(results_dir, model_config: dict, train_config: dict) -> str:
    """The folder for an experiment with these configs, with both configs saved in it:
      - the last run, if it is unfinished with the same configs (train() then resumes it);
      - the last run, if it is empty (it never saved an epoch, e.g. train() refused it);
      - otherwise a new folder numbered after the last one.
    Interrupting the kernel and running the experiment cell again therefore continues
    the same run, and a failed start leaves no stray folder behind."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    names = run_names(results_dir)
    name = None
    if names:
        last = run_info(results_dir, names[-1])
        folder = results_dir / last.name
        same = all((folder / f).is_file() and load_yaml(folder / f) == _plain(c)
                   for f, c in (("model_config.yaml", model_config), ("train_config.yaml", train_config)))
        if last.state == "empty" or (last.state == "unfinished" and same):
            name = last.name
            if last.state == "unfinished":
                print(f"Continuing the unfinished run {results_dir.as_posix()}/{name} (same configs).")
    if name is None:
        name = f"{int(names[-1]) + 1 if names else 0:02d}"
    save_path = results_dir / name
    save_yaml(model_config, save_path / "model_config.yaml")
    save_yaml(train_config, save_path / "train_config.yaml")
    return save_path.as_posix()


def list_runs(results_dir) -> None:
    """Print one line per run folder: its state, epochs and last test accuracy."""
    runs = [run_info(results_dir, name) for name in run_names(results_dir)]
    for run in runs:
        acc = f"test_acc {run.test_acc:.4f}" if run.test_acc is not None else ""
        total = run.n_epochs if run.n_epochs is not None else "?"
        print(f"{Path(results_dir).as_posix()}/{run.name}  {run.state:<10}  epoch {run.epoch}/{total}  {acc}".rstrip())
    if not runs:
        print(f"no runs in {results_dir}")


def remove_runs(results_dir, names=(), unfinished: bool = True) -> list[str]:
    """Delete the runs `names` and (with `unfinished`) every run that is not finished,
    then renumber the remaining runs 00, 01, ... in their order. Returns the new names."""
    results_dir = Path(results_dir)
    existing = run_names(results_dir)
    wanted = {f"{int(n):02d}" if str(n).isdigit() else str(n) for n in names}
    unknown = sorted(wanted - set(existing))
    if unknown:
        raise ValueError(f"no run {', '.join(unknown)} in {results_dir}; runs: {', '.join(existing) or 'none'}")
    for name in existing:
        if name in wanted or (unfinished and run_info(results_dir, name).state != "finished"):
            shutil.rmtree(results_dir / name)
            print(f"removed {results_dir.as_posix()}/{name}")
    kept = run_names(results_dir)
    width = max(2, len(str(len(kept) - 1)) if kept else 2)
    for index, name in enumerate(kept):  # targets never exceed sources, so renaming in order is safe
        new = f"{index:0{width}d}"
        if new != name:
            os.replace(results_dir / name, results_dir / new)
            print(f"renamed {results_dir.as_posix()}/{name} to {new}")
    return run_names(results_dir)
