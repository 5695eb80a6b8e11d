"""`audiobook` and `python -m pipeline`: a stamped no-op build answers here, before any import."""

import sys


def main() -> int:
    from pipeline.stamp import replay

    code = replay(sys.argv[1:])
    if code is not None:
        return code
    from pipeline.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
