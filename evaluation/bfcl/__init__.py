"""BFCL: data download, model-output parsing, the AST checker, the runner."""
