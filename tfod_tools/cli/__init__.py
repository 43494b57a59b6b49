"""The ``tfod`` command line: thin Typer commands over the library."""
