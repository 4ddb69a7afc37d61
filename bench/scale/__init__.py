"""`make bench-scale`: the pipeline at 1x, 10x and 100x of today's catalog and data, within Lambda's limits, costed."""
