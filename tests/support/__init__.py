"""Shared test fixtures and helpers, registered as pytest plugins by tests/conftest.py (`pytest_plugins`).

Test modules import helpers (classes, functions) from here, never from a conftest or from another test module.
"""
