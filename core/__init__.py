"""The floor every app stands on: the error vocabulary (core.errors, no Django or REST framework)
and the helpers every API module shares (core.api). It imports no app; every app may import it."""
