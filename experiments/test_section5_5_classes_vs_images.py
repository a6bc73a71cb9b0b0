"""Section 5.5: at a fixed image budget, more classes or more images per class?

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_5"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_5")
