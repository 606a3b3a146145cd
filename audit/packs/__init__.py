"""Evidence packs: signed PDFs and verifiable ZIPs for auditors.

This package renders and signs from plain data (``audit.packs.data``); it knows nothing of the
other apps. ``releasegate.packs`` gathers the data and runs the builds.
"""
