"""Section 5.5: at a fixed image budget, more classes or more images per class?

The paper: Fewer classes with more images each transfer slightly better.

Conditions: the full source, half the classes x all their images, and all the classes x half their
images (the same image budget); plus a randomly initialised network, the floor every transfer gain
is measured from. At small scale: full, budget=500x1000:pascal-voc, budget=1000x500.

Statistic (per seed, then mean and 95% t interval over seeds): share of the transfer gain kept by
half the classes x all their images minus that kept by all the classes x half their images (same
images; points of %).

Rule: reproduced when the interval lies above the margin 5 (the paper's comparison at a fixed
budget, the half of the classes drawn stratified so that it keeps the full set's share of classes
under the target's synsets; 'better' read as at least EFFECT.); not reproduced when it lies wholly
on the other side; inconclusive otherwise. Verdicts at half and twice the margin are reported beside
it. Judged on the primary target only (claims module docstring).

Written once in itl.claims.CLAIMS["section5_5"]; tests/test_experiments.py checks this text against
it.
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_5")
