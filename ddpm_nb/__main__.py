"""`python -m ddpm_nb ...` is `ddpm-nb ...`, for where the console script is not on PATH."""

import sys

from .cli import main

sys.exit(main())
