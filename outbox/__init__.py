"""The one outbox: tasks written in the request's transaction and published after its commit, with
back-off and a beat flush. It knows nothing of what it carries and imports no app."""
