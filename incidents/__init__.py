"""Incidents: PagerDuty and signed-webhook intake, suspect changes, postmortems and their actions,
DORA classification (dora.py, rules.py pure) and the learning report. Imports approvals and below."""
