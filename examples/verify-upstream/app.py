"""A legacy upstream that believes only requests that came through wxgate.

wxgate signs each proxied request's identity into `X-WX-JWT-ASSERTION` (ES256); this
service verifies it against the gateway's public keys (`/.well-known/jwks.json` on the
admin listener) and answers 401 to anything else -- a request that reached it directly,
with hand-made `X-WX-*` headers, gets nowhere. Identity comes from the verified claims,
never from the plain headers.

    pip install 'pyjwt[crypto]>=2.8,<3'
    WXGATE_JWKS_URL=http://127.0.0.1:9901/.well-known/jwks.json WXGATE_AUDIENCE=/api/ \
        PORT=9000 python3 app.py
    python3 app.py verify <assertion>     # print the claims, or exit 1
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

JWKS_URL = os.environ.get("WXGATE_JWKS_URL", "http://127.0.0.1:9901/.well-known/jwks.json")
AUDIENCE = os.environ.get("WXGATE_AUDIENCE", "/api/")  # the route's `audience`, else its prefix
ISSUER = os.environ.get("WXGATE_ISSUER", "wxgate")

# Keys are fetched once and cached; an unknown `kid` (a rotated key) fetches them again.
keys = jwt.PyJWKClient(JWKS_URL, cache_keys=True, lifespan=300)


def verify(assertion):
    """The claims of a valid assertion for this service; raises jwt.PyJWTError otherwise."""
    key = keys.get_signing_key_from_jwt(assertion).key
    return jwt.decode(
        assertion,
        key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        assertion = self.headers.get("X-WX-JWT-ASSERTION", "")
        try:
            claims = verify(assertion)
        except jwt.PyJWTError as e:
            return self.answer(401, {"error": "not from the gateway", "detail": str(e)})
        self.answer(200, {"hello": claims["sub"], "openid": claims["openid"],
                          "account_id": claims.get("account_id")})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "verify":
        try:
            print(json.dumps(verify(sys.argv[2])))
        except jwt.PyJWTError as e:
            print(f"invalid: {e}", file=sys.stderr)
            sys.exit(1)
    else:
        port = int(os.environ.get("PORT", "9000"))
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
