"""`python -m tlbench.report <dir>`: write the comparison report of every run under a folder."""

import sys

from tlbench.report.tables import main

if __name__ == "__main__":
    sys.exit(main())
