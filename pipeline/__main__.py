"""`audiobook` and `python -m pipeline`: the front door.

A whole-book `audiobook build` that has nothing to do is answered here by
the build ledger (pipeline/ledger.py), before click, the config schema or
the planner are imported; anything else, and any doubt, goes on to the full
command line.
"""

import sys


def main() -> int:
    from pipeline.ledger import answer

    code = answer(sys.argv[1:])
    if code is not None:
        return code
    from pipeline.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
