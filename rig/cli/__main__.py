"""`python -m rig.cli`: the `rig` command."""

import sys

from rig.cli.main import main

sys.exit(main())
