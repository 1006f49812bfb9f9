"""`python -m benchmarks [zoo bench flags]`: the same runner as `zoo bench`."""
import sys

from zoo.cli.main import main

sys.exit(main(["bench", *sys.argv[1:]]))
