"""Domains, samplers, derivative engines, conditions, the Problem API and the registry.

Knows nothing of sketching or training.
"""
