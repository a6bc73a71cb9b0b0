"""Explicit randomness: every random draw in itl comes from a generator seeded by a tuple of
plain values (a seed, a step, a class index...), the same on every machine and Python."""
from __future__ import annotations

import hashlib

import torch


def seed_of(*parts: object) -> int:
    """A 63-bit seed that depends on `parts` only (not on PYTHONHASHSEED or the platform)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(seed_of(*parts))
