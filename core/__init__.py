"""The floor every app stands on: the error vocabulary (core.errors, no Django or REST framework),
who acts (core.actors), shared API and query helpers (core.api, core.queries). It imports no app."""
