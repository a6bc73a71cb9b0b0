"""Section 5.6 (a): do the target's own classes need to be in pre-training? (overlap removed)

The paper: No: ImageNet without the 229 classes under the PASCAL synsets (771 left) transfers to
PASCAL nearly as well as all 1000 classes.

Conditions: the full source and the source without every class under one of the target's synsets;
plus a randomly initialised network, the floor every transfer gain is measured from. At small scale:
full, without=pascal-voc, without=cifar-10.

Statistic (per seed, then mean and 95% t interval over seeds): share of the transfer gain lost with
the target-overlapping classes removed (%).

Rule: reproduced when the interval lies below the margin 20 ('nearly as well' read as losing less
than NEAR (20% of the gain; calibrated on Section 5.2's 2.8 mAP).); not reproduced when it lies
wholly on the other side; inconclusive otherwise. Verdicts at half and twice the margin are reported
beside it. Judged on the primary target only (claims module docstring).

Written once in itl.claims.CLAIMS["section5_6a"]; tests/test_experiments.py checks this text
against it.
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_6a")
