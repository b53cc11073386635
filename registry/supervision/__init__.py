"""Supervision (监督检查): evaluation, violations, rectification orders, the periodic notice and its renderers, the daily run and the statutory due days it fills in."""
