"""Passes: period memberships and session packs the club sells (DESIGN.md "Passes").

products: what the club sells · passes: buying, paying, activating (stacking), cancelling,
granting, expiring, membership · credits: a pack paying bookings, counted from its bookings under
a row lock · card: paying a pass by card (Stripe PaymentIntents, the same webhook as bookings).
"""
