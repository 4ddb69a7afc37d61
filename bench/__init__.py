"""`make bench`: the performance bars (docs/bars.md), as ratios against baselines measured in the same run."""
