"""Flare's benchmarks (DESIGN.md, "Performance"): ``make bench`` = ``python -m bench``.

Each benchmark is a module with ``async def run(ctx) -> list[Figure]`` (bench/report.py);
the runner (``bench/__main__.py``) starts one broker, runs the modules listed in its
``MODULES`` in order, prints every figure next to its baseline as it comes, and writes
``bench/results/latest.json`` and the generated part of ``docs/benchmarks.md``.
bench/dispatch.py (the dispatcher's) has an older blocking interface the runner also accepts.
"""
