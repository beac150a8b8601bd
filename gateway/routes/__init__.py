"""HTTP routes: parse, call the pipeline, serialise — nothing else."""
