"""Small file helpers: YAML configs, submission zips, and atomic writes.

Every file this package writes goes through `atomic_write`: the bytes land in a
temporary file next to the target and are moved over it with `os.replace`, so a
process killed mid-write (a Colab disconnect, Ctrl-C) leaves either the old
file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import yaml


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside `path`; on success it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would create it (mkstemp makes files private: 0600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_yaml(config: dict, path: str | os.PathLike) -> None:
    """Write `config` as YAML, keeping key order and short lists inline."""
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    with atomic_write(path, "w") as f:
        f.write(text)


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML file written by `save_yaml` (safe loader: plain data only)."""
    with open(path) as f:
        data = yaml.safe_load(f)
    return {} if data is None else data


def zip_files(output_filename: str | os.PathLike, *file_paths) -> None:
    """Zip files under their base names (folders flattened), uncompressed.

    Both call styles of the course work: `zip_files(out, a, b, c)` and
    `zip_files(out, [a, b, c])`. A missing file is named in the error, with
    the folder it was looked for in, before anything is written.
    """
    if len(file_paths) == 1 and isinstance(file_paths[0], (list, tuple)):
        file_paths = tuple(file_paths[0])
    missing = [str(p) for p in file_paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"zip_files: cannot find {', '.join(missing)} (looked in {os.getcwd()}); "
            "create or copy these files first, then run the cell again."
        )
    names = [os.path.basename(p) for p in file_paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"zip_files: two files would share the name {', '.join(dupes)} inside the zip.")
    with atomic_write(output_filename, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for path, name in zip(file_paths, names):
            zf.write(path, arcname=name)


def save_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Pickle `obj` atomically (used for the course's results.pkl format)."""
    with atomic_write(path, "wb") as f:
        pickle.dump(obj, f)


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, numbers and strings; refuses any class.

    results.pkl holds only plain numbers, so nothing legitimate needs a class;
    numpy scalars (written by some older helpers) are the one exception.
    """

    _ALLOWED = frozenset({
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"results file contains a {module}.{name} object; only plain numbers and lists are expected"
        )


def load_pickle(path: str | os.PathLike) -> Any:
    """Read a pickle that holds plain data only (see `_PlainDataUnpickler`)."""
    with open(path, "rb") as f:
        return _PlainDataUnpickler(f).load()
