"""Loafy: the booking system of a sports and social club.

Importing the package loads nothing else: the app factories are in `loafy.app`.
"""
