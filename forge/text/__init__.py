"""Text steps: rendering rows as documents, quality filters, decontamination."""
