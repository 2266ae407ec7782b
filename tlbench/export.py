"""`python -m tlbench.export`: the entry point; the work is in tlbench.inference.export."""

from tlbench import cli
from tlbench.inference.export import check, export


def main() -> None:
    cli.main("export", export, check)


if __name__ == "__main__":
    main()
