from enum import StrEnum


class IncidentError(StrEnum):
    SERVICE_NOT_YOURS = "incident_service_not_yours"
    STATUS_TRANSITION = "incident_status_transition"
    TIMES_INCONSISTENT = "incident_times_inconsistent"
    NOT_A_SUSPECT = "incident_not_a_suspect"
    PERSON_REQUIRED = "incident_person_required"
    REASON_REQUIRED = "incident_reason_required"
    NOT_CLASSIFIER = "incident_not_classifier"
    NOT_MAJOR = "incident_not_major"
    REPORT_ALREADY_SENT = "dora_report_already_sent"
    NO_POSTMORTEM = "incident_no_postmortem"
    POSTMORTEM_EXISTS = "postmortem_exists"
    POSTMORTEM_COMPLETED = "postmortem_completed"
    UNKNOWN_TAG = "root_cause_tag_unknown"
    SIGNATURE_INVALID = "incident_webhook_signature_invalid"
    NOT_CONFIGURED = "incident_webhook_not_configured"
    EVENT_REPLAYED = "incident_event_replayed"
    EVENT_ID_REUSED = "incident_event_id_reused"
    EVENT_INVALID = "incident_event_invalid"
