"""`python train.py [FLAGS]` does what `cashscore train [FLAGS]` does; the training code is `cashscore.training`."""

import sys

from cashscore.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
