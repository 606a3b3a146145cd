"""The web workers' entry point (releasegate/wsgi.py) leaves what it loaded at start-up to the
garbage collector's permanent generation, so that a full collection in a worker does not walk
Django, the apps and the URLconf: on a busy machine such a walk paused a request for 50 ms to
over 500 ms (bench/gate_tail.py, docs/benchmarks.md)."""

import os
import subprocess
import sys

PROBE = """
import gc, sys
import releasegate.wsgi
print(gc.get_freeze_count(), "releasegate.apis" in sys.modules, len(gc.get_objects()))
"""


def test_the_wsgi_application_freezes_what_it_loaded_with_the_views():
    answer = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    frozen, views_loaded, collectable = answer.stdout.split()
    # The URLconf (and the API views it imports) was loaded before the freeze, not on the
    # first request; what the collector still walks is a small remainder.
    assert views_loaded == "True"
    assert int(frozen) > 50_000
    assert int(collectable) < int(frozen) // 10
