"""The demo (`make demo`) and every homework's sample submissions."""


def samples_of(assignment: str):
    """The sample-submission module of a homework (demo/<assignment>_samples.py: build,
    build_blank, MUTANTS), or None when it has none."""
    import importlib

    try:
        return importlib.import_module(f"demo.{assignment}_samples")
    except ModuleNotFoundError:
        return None
