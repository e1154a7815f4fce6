"""The `conveyor` console script: the composition root. Nothing imports this package."""
