"""Pure pack rendering: the plain data of a pack, its PDFs, its ZIP and CSV, the sample and the steps.
No Django: it imports the standard library, reportlab and the audit log's pure kernel only."""
