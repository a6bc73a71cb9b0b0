"""Section 4 (Figure 1): how many pre-training images per class are sufficient?

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section4"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section4")
