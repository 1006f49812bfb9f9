"""`python -m zoo` is the `zoo` command (torchrun uses it: `torchrun ... -m zoo train NAME ...`)."""
import sys

from zoo.cli.main import main

sys.exit(main())
