"""Data quality records (数据质量): the quarantine store and correction tickets (疑义校核工单)."""
