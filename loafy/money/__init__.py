"""Money: the ledger, card payments (Stripe), refunds and reconciliation."""
