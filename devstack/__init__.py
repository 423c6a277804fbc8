"""The local stack: moto's AWS, a real OAuth 2.0 authorization server, and a Lambda host, no Docker."""
