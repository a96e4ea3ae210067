"""Where data comes in: API documentation (OpenAPI, Python modules, hubs, crawled doc sites), public function-calling datasets, general code and text, BFCL items."""
