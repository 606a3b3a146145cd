"""The floor every app stands on: the error vocabulary (core.errors, no Django or REST framework),
who acts (core.actors), the range of times taken from outside (core.times), shared API and query
helpers (core.api, core.queries). It imports no app."""
