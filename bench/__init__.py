"""`make bench`: the performance bars of DESIGN section 9, as ratios against baselines measured in the same run."""
