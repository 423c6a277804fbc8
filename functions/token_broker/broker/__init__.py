"""The token broker: OAuth 2.0 client-credentials tokens, fetched once and shared fleet-wide."""
