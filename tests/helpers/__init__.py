"""Helpers shared by test modules (imported as ``from helpers.X import ...``: pytest puts ``tests/`` on
sys.path for its conftest). Helpers benchmarks use too live in the top-level ``devkit`` package."""
