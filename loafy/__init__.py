"""Loafy: the booking system of a sports and social club."""

from loafy.app import create_app

__all__ = ["create_app"]
