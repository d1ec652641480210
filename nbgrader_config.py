"""nbgrader configuration for the kit. `python -m autograder release hwN` uses it: it runs
`nbgrader generate_assignment hwN --force` on a copy of source/hwN/ (the notebook and its
Makefile) to make the student notebook, then adds hw_utils/, checklib/ and the public check
data to form release/hwN/ (see autograder/release.py)."""
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
