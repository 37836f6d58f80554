"""Thin Prefect tasks, one logical step each; the logic they call works without Prefect."""
