"""The training wing: the loop, the optimiser, the run folder, metrics.csv, summaries and
checkpoints."""
