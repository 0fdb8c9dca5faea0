"""The jobs users run, composed from datamix's stages: curate, purchase, prune_eval."""
