"""``python -m scalestudy.cli``: the ``scalestudy`` command."""

import sys

from scalestudy.cli import main

if __name__ == "__main__":
    sys.exit(main())
