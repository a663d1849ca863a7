"""`python -m plmkit …` (and `torchrun -m plmkit train …`)."""

from plmkit.cli import main

if __name__ == "__main__":
    main()
