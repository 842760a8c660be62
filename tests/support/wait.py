"""Polling for a condition the system under test reaches on its own (a service up, a file written)."""

import time


def wait_until(pred, timeout=15, step=0.05):
    """Call pred until it returns something true (returned) or timeout passes (pred's last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
