"""`python -m tlbench.export`: the entry point; the work is in tlbench.inference.export."""

from tlbench.inference.export import main

if __name__ == "__main__":
    main()
