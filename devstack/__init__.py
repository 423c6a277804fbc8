"""The local stack: moto's AWS, a real OAuth 2.0 authorization server, and a Lambda host, no Docker."""

from devstack.local.lambda_host import put_on_path

# The function's folder and each layer's python/ on sys.path, as Lambda mounts them at /opt/python,
# so that every devstack module (and its caller) can import the broker and token_client.
put_on_path()
