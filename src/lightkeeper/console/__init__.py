"""The web console (``/console``): static pages that are just another API client.

Plain ES modules and CSS served from this package; no build step. Every action goes through
the API 3.0 front door, signed in the browser with WebCrypto, with temporary credentials from
STS ``GetFederationToken`` (lighthouse/federation.py) kept in session storage only.
"""
