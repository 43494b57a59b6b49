"""The self-contained HTML report of ``tfod diagnose --html`` and the figures it embeds."""
