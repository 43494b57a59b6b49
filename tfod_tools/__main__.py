"""``python -m tfod_tools`` runs the ``tfod`` CLI."""

from tfod_tools.cli.app import run

if __name__ == "__main__":
    run()
