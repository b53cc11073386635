"""Data quality (数据质量): rules and validators applied to shared data before it is published."""
