"""Sessions and bookings: publishing, booking, cancelling, listing, staff actions."""
