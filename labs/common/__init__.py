"""Shared code of the labs' checks (checklib); imported as common.checklib with labs/ on
PYTHONPATH."""
