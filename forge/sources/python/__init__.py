"""Python modules as API rows: sandboxed introspection and signature-to-JSON-Schema mapping."""
