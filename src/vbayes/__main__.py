"""``python -m vbayes`` (also ``torchrun -m vbayes``)."""

from vbayes.cli import run

if __name__ == "__main__":
    run()
