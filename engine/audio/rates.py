"""Rate ratios for band-limited resampling, shared by audition and the models. Pure
functions, any thread (no torch, so the player can use them).

A polyphase kernel for rate_in -> rate_out has (rate_out/g) phases of about (rate_in/g)
taps, g their gcd: 44,100 -> 48,000 is 160 x 160, but a film pull-down rate such as
44,056 Hz (g = 8 against 48 kHz) needs 6,000 x 5,600, and 44,099 Hz (g = 1) needs 48,000 x
44,100 floats (8 GB). Beyond MAX_KERNEL_ELEMENTS the nearest source rate with a small
enough kernel is used instead (44,056 -> 44,050, 44,099 -> 44,100): a pitch/time error
within 1 % (tests/test_hostile_rates.py measures the worst over every rate Sonarium reads,
1 kHz to 768 kHz), inaudible when auditioning and far below what changes an embedding.
"""

from __future__ import annotations

import math

MAX_KERNEL_ELEMENTS = 2_000_000  # 8 MB of float32


def kernel_elements(up: int, down: int, zeros: int = 6) -> int:
    """About how many floats the polyphase kernel for ratio up/down holds."""
    return up * (down + 2 * math.ceil(zeros * down / (min(up, down) * 0.99)))


def _ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    g = math.gcd(rate_in, rate_out)
    return rate_out // g, rate_in // g


def reduced_ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    """(up, down): rate_out/rate_in reduced, with rate_in replaced by the nearest rate
    whose kernel is small enough when the exact one is not (see the module docstring)."""
    for delta in range(0, max(1, rate_in // 100) + 1):  # within 1 % of the real rate
        for approx in (rate_in - delta, rate_in + delta):
            if approx > 0 and kernel_elements(*_ratio(approx, rate_out)) <= MAX_KERNEL_ELEMENTS:
                return _ratio(approx, rate_out)
    for k in (16, 8, 4, 2, 1):  # past 1 %: a multiple of a fraction of the target rate
        step = rate_out // k
        if rate_out % k == 0:
            up, down = _ratio(max(step, round(rate_in / step) * step), rate_out)
            if kernel_elements(up, down) <= MAX_KERNEL_ELEMENTS:
                return up, down
    raise ValueError(f"no bounded resampling kernel from {rate_in} Hz to {rate_out} Hz")


def working_rate(rate_in: int, rate_out: int) -> int:
    """The source rate the kernel for rate_in -> rate_out is built for (rate_in itself
    unless it had to be rounded)."""
    up, down = reduced_ratio(rate_in, rate_out)
    return rate_out * down // up
