"""`python -m tlbench.evaluate`: the entry point; the work is in tlbench.inference.evaluate."""

from tlbench.inference.evaluate import main

if __name__ == "__main__":
    main()
