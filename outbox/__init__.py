"""The one outbox: tasks written in the request's transaction and published after its commit, with
back-off and a beat flush; and attempts at outgoing calls whose rows wait in tables of their own
(outbox.attempts). It knows nothing of what it carries and imports no app."""
