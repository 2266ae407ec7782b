"""`python -m tlbench.rank`: the entry point; the work is in tlbench.ranking."""

from tlbench import cli
from tlbench.ranking.run import check, rank


def main() -> None:
    cli.main("rank", rank, check)


if __name__ == "__main__":
    main()
