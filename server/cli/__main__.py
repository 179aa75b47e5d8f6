"""``python -m reelcast.server.cli``: the ``reelcast`` command, as the tests and a bare checkout run it."""

import sys

from reelcast.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
