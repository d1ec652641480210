"""hw_utils: the helpers students train with in this course kit.

    from hw_utils import save_yaml, load_yaml, zip_files, Tracker, train

A drop-in, compatible replacement for the course's original helper module
(same names, signatures, files and results.pkl keys), plus: resuming a run
after a crash (and `next_run`, which picks the folder so that re-running an
experiment cell continues its unfinished run), atomic writes, clear errors, and a
faster inner loop.
"""
from .data import DeviceImages, cifar10
from .io import load_yaml, save_yaml, zip_files
from .runs import list_runs, next_run, remove_runs
from .tracker import Tracker
from .train import Device, TrainingSetupError, evaluate, seed_everything, train

__all__ = ["Device", "save_yaml", "load_yaml", "zip_files", "Tracker", "train",
           "evaluate", "seed_everything", "TrainingSetupError", "DeviceImages", "cifar10",
           "next_run", "list_runs", "remove_runs"]
__version__ = "0.1.0"
