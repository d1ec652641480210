"""One test per rubric item of the graded submission (see conftest.py)."""
import pytest


def test_rubric_item(rubric_item, grade_report):
    result = next(r for r in grade_report.results if r.id == rubric_item.id)
    if result.status == "pending":
        pytest.skip(f"{result.name}: {result.output}")
    assert result.status == "passed", f"{result.name} ({result.score:g}/{result.max_score:g} points)\n{result.output}"
