"""Fixtures the kit's tests share."""
import pytest

from autograder.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox per test module: starting its zygote (torch imported) takes seconds."""
    with Sandbox() as sb:
        yield sb
