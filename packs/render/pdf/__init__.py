"""The packs' PDFs, one module per document (changelog, population) over a shared layout.
Pure like the rest of packs.render: reportlab and the plain pack data, no Django."""
