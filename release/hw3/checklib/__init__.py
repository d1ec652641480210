"""The check model shared by the autograder and the students' self-check.

Pure Python plus torch, with no Linux-only calls, so that it runs on every
student laptop as well as inside the grader's sandbox:

    checks.py   Check and Verdict: what is measured (a probe) and how it is judged
    probes.py   plain data over the wire (encode/decode) and measuring helpers
    runner.py   run graded cells, then probes, reporting each step as a record

The engine (`autograder/`: sandbox, zygote, batch grading, Gradescope) builds on
this package; the student client in `hw_utils` uses it without the engine.
"""
