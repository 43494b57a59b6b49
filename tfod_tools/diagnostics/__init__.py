"""Diagnose a TF OD API training run: findings with evidence and fixes (``tfod diagnose``)."""
