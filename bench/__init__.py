"""Benchmarks (not tests). Bench-only apps and models live here, outside the product: nothing
under releasegate/, changelogs/, approvals/ or audit/ imports this package."""
