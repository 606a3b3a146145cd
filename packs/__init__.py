"""Evidence packs for auditors: the pack job, gathering the data, builds (tasks), the API and admin.
It may import every app below it (the gate, incidents, approvals, changelogs, audit) and core."""
