"""`python -m curate ...` is the same as `curate ...`."""

import sys

from curate.cli import main

sys.exit(main())
