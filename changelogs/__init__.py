"""Changelogs: the catalog (domains, services, journeys), changelogs and revisions, evidence and its
storage, the parsers and readiness policy (pure). Imports audit and core, never approvals or releasegate."""
