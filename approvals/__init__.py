"""Approvals: the authority matrix and its two-person grants, decisions bound to revision and content
hash, the counting rules (rules.py, pure), hotfix retrospectives, notifications. Imports changelogs, audit, core."""
