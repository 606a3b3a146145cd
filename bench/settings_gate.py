"""Settings for bench/gate.py: the production settings, served with a URLconf that adds one
bench-only endpoint (bench/gate_urls.py). Everything else, DEBUG off included, comes from the
environment exactly as in production; the benchmark sets that environment."""

import os

from releasegate.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gate_urls"

if os.environ.get("BENCH_GATE_TRACE") == "1":  # bench/gate_tail.py: where each request's time goes
    MIDDLEWARE = ["bench.trace.TraceMiddleware", *MIDDLEWARE]  # noqa: F405
