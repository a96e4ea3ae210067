"""The OpenAPI/Swagger directory: fetching, parsing with $refs resolved, the parallel ingest."""
