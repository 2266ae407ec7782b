"""`python -m tlbench.predict`: the entry point; the work is in tlbench.inference.predict."""

from tlbench.inference.predict import main

if __name__ == "__main__":
    main()
