"""Lightkeeper: a self-hosted Tencent Cloud Lighthouse instance-snapshot service."""

__version__ = "0.1.0"
