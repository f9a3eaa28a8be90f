"""Executors: run a plan's stages and trials (local)."""
