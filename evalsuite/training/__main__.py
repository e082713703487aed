"""Entry point of ``python -m evalsuite.training`` (``make tiny-models``)."""

import sys

from evalsuite.training.build import main

sys.exit(main())
