"""Release Gate: the project package (settings, URLs, Celery, identities) and the gate, deployments,
freezes, GitHub and the document-signing key. It may import every app but packs, which stand above it."""
