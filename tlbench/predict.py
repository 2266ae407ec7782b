"""`python -m tlbench.predict`: the entry point; the work is in tlbench.inference.predict."""

from tlbench import cli
from tlbench.inference.predict import check, predict


def main() -> None:
    cli.main("predict", predict, check)


if __name__ == "__main__":
    main()
