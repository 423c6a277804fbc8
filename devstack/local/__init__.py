"""The local stand-ins for what the broker talks to: AWS (moto), an OAuth 2.0 authorization server,
STS, Lambda's Invoke API and host, a resource server; and the stack, demo and serve made of them."""
