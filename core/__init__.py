"""The floor every app stands on: the error vocabulary (core.errors, no Django or REST framework),
who acts (core.actors) and the helpers every API module shares (core.api). It imports no app."""
