"""`python -m tlbench.evaluate`: the entry point; the work is in tlbench.inference.evaluate."""

from tlbench import cli
from tlbench.inference.evaluate import check, evaluate


def main() -> None:
    cli.main("evaluate", evaluate, check)


if __name__ == "__main__":
    main()
