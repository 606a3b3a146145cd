"""Release Gate: the project package (settings, URLs, Celery, identities) and the gate, deployments,
freezes, GitHub and pack builds. The top layer: it may import every app; no app imports it."""
