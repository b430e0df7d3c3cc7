"""The door: tickets (an opaque secret per booking, its URL and QR code) and checking players in."""
