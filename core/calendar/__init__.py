"""The working-day calendar (工作日历) beside the clock: which days count, and the statutory due days."""
