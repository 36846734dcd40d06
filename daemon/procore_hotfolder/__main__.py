"""``python -m procore_hotfolder``."""

import sys

from procore_hotfolder.cli import main

sys.exit(main())
