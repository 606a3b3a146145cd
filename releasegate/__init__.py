"""Release Gate: the project package (settings, URLs, Celery, identities) and the gate."""
