"""Prefect flows: render one production, or every production on a schedule."""
