"""Recurring sessions, calendar feeds, the attendance policy and the reports."""
