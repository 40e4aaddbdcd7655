"""A fixed test service account for the Vertex AI simulator's OAuth token endpoint.

The key pair was generated once with ``cryptography`` (RSA 2048) and is public on
purpose: it only unlocks this simulator. ``service_account_info(token_uri)`` is the
JSON key file a client loads (``google.oauth2.service_account.Credentials.
from_service_account_info``), with ``token_uri`` pointing at the simulator, so the
real JWT-bearer grant (RFC 7523) runs end to end without network access.
"""

from __future__ import annotations

from typing import Any

CLIENT_EMAIL = "mediagate-sim@sandbox-project.iam.gserviceaccount.com"
PROJECT_ID = "sandbox-project"
PRIVATE_KEY_ID = "5a1d0c0ffee0b5e2c3d4e5f60718293a4b5c6d7e"
CLIENT_ID = "100000000000000000042"

PRIVATE_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCQQdMOUIRfI2oW
q/BahXtvK4R24MCBzqTX6uaq/XltjltjKQ2pzBjSezR+EQDDMePUNcClSDoO+VBY
yDVGsBbA+aso+QCGLFNkhnK1WKAyfnzvJrbTjymlnPZYZSW8sBCEgCESSPNJAB5x
TRW1B3AXFWP9N/Kf9j4F+f1fvdbA+vk0r90aCTs0tQwOqW8ioe3KbqC7+oUg/5kk
uFT3+0cWZFb6C5L8xX2BsGLmsmaHJfVLLIG/Gn53bwFRLwg9SIHAHxJ4ELRJPn4x
IiGfpK+ayzBTDLCsOZLg9MN4Eyr0huKokwFW+r+OlqjJXzXm8cp7daC+EF2kWtLh
Zf5Rn6xzAgMBAAECggEAN3wJ6IyRjWI6sMOrK7YBlu2/AlZJ1OOdRasE06mwpbHG
dqpYpgFpXrOiqgZyK6GpxnpyQWA5bH76J1vCGhEqf0jIS3cSe4ja/mQ0BIo0+5bp
CLb0RQTgeOGZYsBstlll0QDTN4w1ftN74gpLGhjlRQumLMPzHxGAI55WlReYXRrX
Frr9SOS7PkuBBWs2pzi3B4w4bpN2+1kNz49U6NwKMSbkWvFlTsh+tBIIiWijZyqr
UCeNBoHbegIA3UNoRK6m6zN7+lk1m6EUGhzCzlGlluJbeKnnSYVytGj9/Cuk7v3f
4hWteef3ClyslkZKiWS+pEpG5c0nQiR96r8fuMRf4QKBgQDEr0yw1DXRFLSkoQez
vSomN5j+SeTEQpuBSDCjQM6GOZHlKSVBd341SXIrDVMDqcJ0MKZtFD+xUalpQ6m4
37ASanBX3rLB+3H1d7swJHqEkp9VSfnVU0GTCIh8zbf92WmUlaPKgG1WeUwXVN1q
MchTJZNSpuEt182Zplz1XH/NkQKBgQC7wvEKagV2I6E60wQM9tX5HIaZ+klzkvE/
osrR6wA9T6dwd4pVdZRUfhFNdNZlIa0hOTTFTGK30k5DaSedyeOC7UvHLxf5BMLG
6CvlzQ6v6Ax4YXeFz2ZFHDJIIuu0MYAC83xtKpFXY2SjkEjfsAKULYupvzFpBkpg
c0c+ziUnwwKBgQDC/sDbtyg7x3loljWanvpAtXI6+WuSoC6nt7hwwfl+3Wild2t2
Qk+f6NcFk8ovoYglxW3aSu7yj3GT6P9FSI+5Ukla9HDpHK7YnAG7Mw88jFjnJ9ZH
BqnGaflXMmUtiPTB2LFwPG8qAkvL/dkeRYjD1kb+9G/fEUrHAEa9Ax254QKBgG4v
EPqWiwvwDr6RdHATLjAY8FhNy2raUV6RrsoPST2xj8XtMK3D6T7IGGlG5kXExG+Z
vYEGuWu8K5ddjxUGk8+SZ4TE+yF0DMVjG9eoRTUvTJocQGKy+gYWbN9uNrmwzrls
n5kEgPQybK2bj1hNVsYUEECV5W4HdgAxxh5yJNW3AoGAIFd2u7tiwolsUlo+lVmz
D9QlfMRafGgKI+BYnNTvveffxqGo5KVFnY7QpA19kT3n3XF366naCzRsKY3Gy9i3
0NS/JhAy/bWfwTzyQ2w160bQ8/ihiS9jbC7/cWCl8VmqeuimEFG5nNeZ0xcErJh7
c0qwVXC+hFHp9PgEetgU0NM=
-----END PRIVATE KEY-----
"""

PUBLIC_KEY_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkEHTDlCEXyNqFqvwWoV7
byuEduDAgc6k1+rmqv15bY5bYykNqcwY0ns0fhEAwzHj1DXApUg6DvlQWMg1RrAW
wPmrKPkAhixTZIZytVigMn587ya2048ppZz2WGUlvLAQhIAhEkjzSQAecU0VtQdw
FxVj/Tfyn/Y+Bfn9X73WwPr5NK/dGgk7NLUMDqlvIqHtym6gu/qFIP+ZJLhU9/tH
FmRW+guS/MV9gbBi5rJmhyX1SyyBvxp+d28BUS8IPUiBwB8SeBC0ST5+MSIhn6Sv
msswUwywrDmS4PTDeBMq9IbiqJMBVvq/jpaoyV815vHKe3WgvhBdpFrS4WX+UZ+s
cwIDAQAB
-----END PUBLIC KEY-----
"""


def service_account_info(token_uri: str) -> dict[str, Any]:
    """A service-account key file (as Google issues them) whose grants go to ``token_uri``."""
    return {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": PRIVATE_KEY_PEM,
        "client_email": CLIENT_EMAIL,
        "client_id": CLIENT_ID,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + CLIENT_EMAIL.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }


# client_email -> PEM public key of every service account the token endpoint trusts.
TRUSTED_KEYS: dict[str, str] = {CLIENT_EMAIL: PUBLIC_KEY_PEM}
