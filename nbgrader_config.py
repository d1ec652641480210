"""nbgrader configuration for the kit: run `nbgrader generate_assignment hwN --force`
from the repository root to turn source/hwN/ into the student release in release/hwN/."""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data", "results"]

# No gradebook database: the kit grades with its own autograder, not nbgrader's.
c.GenerateAssignment.no_database = True
c.SaveCells.enabled = False

# What students see where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
