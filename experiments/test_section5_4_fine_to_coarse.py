"""Section 5.4: does fine-class training help recognise coarse classes?

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_4"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_4")
