"""``python -m reelcast.cli``: the ``reelcast`` command, as the tests and a bare checkout run it."""

import sys

from reelcast.cli import main

if __name__ == "__main__":
    sys.exit(main())
