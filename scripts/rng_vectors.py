#!/usr/bin/env python3
"""Prints reference values from CPython's `random` for tests/rng.rs (run once, output committed
as tests/data/rng_vectors.json). Floats are written with repr, which round-trips exactly."""
import json
import random
import sys

out = {}
for seed in (0, 1, 42, 1337, 2**32 + 7):
    r = random.Random(seed)
    case = {"seed": seed}
    case["u32"] = [r.getrandbits(32) for _ in range(8)]
    case["random"] = [repr(r.random()) for _ in range(8)]
    case["gauss"] = [repr(r.gauss(0, 0.08)) for _ in range(7)]  # odd: leaves one cached
    case["gauss_after"] = repr(r.gauss(1.5, 2.0))
    case["getrandbits"] = [[k, r.getrandbits(k)] for k in (1, 5, 17, 31, 32)]
    case["randbelow"] = [[n, r._randbelow(n)] for n in (1, 2, 3, 27, 1000, 32033, 2**31 + 1)]
    xs = list(range(50))
    r.shuffle(xs)
    case["shuffle50"] = xs
    weights = [0.1, 0.0, 2.5, 1e-9, 0.7, 3.0]
    case["choices"] = [r.choices(range(len(weights)), weights=weights)[0] for _ in range(40)]
    out[str(seed)] = case
json.dump(out, sys.stdout, indent=1)
print()
