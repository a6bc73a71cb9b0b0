"""itl: re-testing Huh, Agrawal & Efros 2016, "What makes ImageNet good for transfer learning?"
(arXiv 1608.08614), one parametrised experiment test per claim and condition."""

__version__ = "0.1.0"
