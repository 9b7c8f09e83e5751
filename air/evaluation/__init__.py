"""The evaluation wing: the held-out evaluator and its box metrics, the likelihood bounds, and
loading a model folder."""
