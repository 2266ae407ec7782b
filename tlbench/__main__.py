"""`python -m tlbench [overrides]` and `python -m tlbench --multirun [overrides]`."""

from tlbench.cli import train_main

if __name__ == "__main__":
    train_main()
