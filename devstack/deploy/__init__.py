"""Deployment checks: what deploying asks of IAM, IAM's evaluation rules, and the IAM audit."""
