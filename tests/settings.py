"""Test settings: production settings with the redirect off (the test client speaks plain HTTP)
and a fast password hasher.  Everything else, RLS and encryption included, is the real thing."""

from portal.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
