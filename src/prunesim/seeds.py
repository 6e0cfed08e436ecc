"""Seeds derived from (base seed, experiment, run, iteration), stable across processes.

Python's ``hash`` is salted per process, so we hash with blake2b instead: the same
config always gives the same seeds, and different runs/iterations never collide by accident.
"""

from __future__ import annotations

import hashlib


def derive_seed(base_seed: int, *parts: object) -> int:
    """Return a 31-bit seed determined by ``base_seed`` and the ``parts`` (e.g. run, iteration)."""
    key = "/".join([str(base_seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % (2**31 - 1)
