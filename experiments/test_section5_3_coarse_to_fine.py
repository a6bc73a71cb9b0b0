"""Section 5.3: does coarse-class training induce features that separate fine classes?

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_3"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_3")
