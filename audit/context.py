"""The id of the request being served, so every audit event of a request can be tied back to
its access log line. Set by releasegate's middleware; empty outside requests."""

from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
