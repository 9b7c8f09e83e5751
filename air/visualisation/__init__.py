"""The visualisation wing: colours, charts, the demo's pictures and window, the embedding
projector."""
