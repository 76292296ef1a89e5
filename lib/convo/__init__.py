"""convo: an analytics warehouse for customer-support conversations."""
