"""Deploy-time tools, kept out of every Lambda package: the layer table, `make preflight` and `make smoke`."""
