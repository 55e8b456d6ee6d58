"""The wire protocol between the pool and its workers: control bytes and the load bound.

A worker sends READY once it has booted. A request is a pickle of `(preload, fn, kwargs,
[args, ...])`; the worker answers ACK once it has loaded it, then one pickled `(status,
value)` per args tuple (status True: a value; False: that item's exception; None: the
request did not load and every item fails with it).
"""

from __future__ import annotations

import pickle

# Single-byte control messages; results are pickles, whose first byte is b"\x80".
READY = b"R"  # worker booted
ACK = b"A"  # worker loaded a request; the deadline of its first item starts now
PROTOCOL = pickle.HIGHEST_PROTOCOL
# Booting a worker or loading a request may import modules and warm caches (seconds):
# bounded, but never charged to a call's deadline.
LOAD_TIMEOUT = 120.0
