"""`python -m extract serve`: the batch job's stages (extract.api.Extractor) behind HTTP, on Ray Serve.

- extract/serve/config.py: the validated config (configs/serve.yaml).
- extract/serve/protocol.py: request parsing and validation, responses, the service's own metrics
  (no Ray: unit-testable).
- extract/serve/log.py: what was served, appended as Parquet parts in the job's docs and entities schemas.
- extract/serve/app.py: the Ray Serve deployment (the one module of extract.serve importing ray).
"""
