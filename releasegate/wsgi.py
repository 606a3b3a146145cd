import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")

application = get_wsgi_application()

# Everything loaded so far (Django, the apps, the URLconf and the views it imports: some 180,000
# objects that live as long as the process) goes to the collector's permanent generation, which
# its full collections skip. Otherwise each full collection walks them all: 50 ms to over 500 ms
# on a busy machine, a pause for every request the worker is serving or has queued
# (bench/gate_tail.py, docs/benchmarks.md). Objects made later are collected as before.
get_resolver().url_patterns  # noqa: B018 - loads the URLconf (and the views) now, not on the first request
gc.freeze()
