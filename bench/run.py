"""Foundation micro-benchmarks: print figures, assert nothing (timings on shared machines are noisy).

    make bench

Client authentication must cost well under a millisecond (a fast hash over a high-entropy secret), while
a login pays for argon2 on purpose.
"""

from __future__ import annotations

import gzip
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apertur.config.settings")


def timed(label: str, fn: Callable[[], object], *, repeat: int, unit: str = "µs") -> None:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    scale = 1e6 if unit == "µs" else 1e3
    p50 = statistics.median(samples) * scale
    p99 = sorted(samples)[int(len(samples) * 0.99) - 1] * scale
    print(f"{label:<44} n={repeat:<6} p50={p50:9.1f} {unit}   p99={p99:9.1f} {unit}")


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password

    from apertur.core import tokens
    from apertur.oauth.domains import origin_allowed, validate_domain_pattern

    secret = tokens.generate(tokens.Prefix.CLIENT_SECRET, 48)
    stored = tokens.hash_secret(secret)
    patterns = [validate_domain_pattern(p) for p in ("example.com", "*.example.com", "*.localhost")]

    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s)")
    timed(
        "client secret check (sha256 + compare_digest)",
        lambda: tokens.secret_matches(secret, stored),
        repeat=20_000,
    )
    timed(
        "allowed-domain check (3 patterns)",
        lambda: origin_allowed("https://staging.app.example.com:8443", patterns),
        repeat=20_000,
    )
    timed("secret generation (48 chars)", lambda: tokens.generate(tokens.Prefix.CLIENT_SECRET, 48), repeat=5_000)
    bundle = Path(__file__).resolve().parent.parent / "apertur" / "static" / "sdk" / "aptr-connect.js"
    raw = bundle.read_bytes()
    print(f"{'aptr-connect.js bundle':<44} {len(raw):>7} bytes   gzipped {len(gzip.compress(raw, 9)):>6} bytes")
    timed(
        "argon2 password hash (login cost)",
        lambda: make_password("correct-horse-battery"),
        repeat=20,
        unit="ms",
    )


if __name__ == "__main__":
    main()
