"""TransformerFunction: landing manifests become validated, typed, deduplicated Parquet in staging/."""
