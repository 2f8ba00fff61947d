"""``flare start`` under cProfile: ``python -m bench.profile_flare OUT.prof`` (FLARE_* env).

Used by ``python -m bench --profile``; the profile is written when the process stops
(SIGTERM: uvicorn shuts down and ``main`` returns).
"""

from __future__ import annotations

import cProfile
import signal
import sys


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["flare", "start"]
    from app.cli import main as flare_main

    profiler = cProfile.Profile()
    # uvicorn handles SIGTERM while it serves, then restores the handler it found and raises
    # the signal again: let that one do nothing, so the profile is written below.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        profiler.runcall(flare_main)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
