"""Settings for bench/gate.py: the production settings, served with a URLconf that adds one
bench-only endpoint (bench/gate_urls.py). Everything else, DEBUG off included, comes from the
environment exactly as in production; the benchmark sets that environment."""

from releasegate.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gate_urls"
