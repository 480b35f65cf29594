"""Benchmarks: nesting measured against host podman, per outer mode.

Belongs here: the measurement run (``suite``), the bench's outer container
(``container``), the same-version host (``samehost``), job measurements (``jobs``),
image builds in jobs (``builds``) and the report (``report``).

Does not belong here: the job-lifecycle driver with the fake GitLab (test harness:
``tests/harness/jobbench.py``), building the image (:mod:`pipglr.build`), the
``pipglr`` command (:mod:`pipglr.ops`). The top layer: nothing in pipglr imports it.
"""
