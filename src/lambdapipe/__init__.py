"""lambdapipe: a Lambda Architecture analytics pipeline for an online shop."""

__version__ = "0.1.0"
