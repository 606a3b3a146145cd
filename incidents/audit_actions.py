from enum import StrEnum


class IncidentAction(StrEnum):
    """Audit action tags written by this app, shaped ``subject:action``."""

    INCIDENT_OPENED = "incident:opened"
    INCIDENT_UPDATED = "incident:updated"
    INCIDENT_STATUS_CHANGED = "incident:status_changed"
    INCIDENT_EVENT_RECEIVED = "incident:event_received"
    INCIDENT_EVENT_REFUSED = "incident:event_refused"
    SUSPECT_DECIDED = "incident:suspect_decided"
    DORA_CLASSIFIED = "incident:dora_classified"
    DORA_REPORT_SENT = "incident:dora_report_sent"
    DORA_REPORT_OVERDUE = "incident:dora_report_overdue"
    POSTMORTEM_OPENED = "postmortem:opened"
    POSTMORTEM_UPDATED = "postmortem:updated"
    POSTMORTEM_COMPLETED = "postmortem:completed"
    POSTMORTEM_OVERDUE = "postmortem:overdue"
    ACTION_ADDED = "postmortem:action_added"
    ACTION_UPDATED = "postmortem:action_updated"
    ACTION_OVERDUE = "postmortem:action_overdue"
    LEARNING_REPORT = "incident:learning_report"
