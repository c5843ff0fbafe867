"""The bucket's CORS rules on the local S3's actual responses, as S3 applies them.

moto answers preflights from the bucket's CORS configuration, but its server also allows every origin
on every other response, so a browser would accept any page's upload. This replaces those headers on
the bucket's responses with what the bucket's rules (from the template) allow for the request's origin
and method: nothing for an origin the rules do not name, so the browser refuses the response.
"""

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response


class BucketCors:
    def __init__(self, bucket_name: str, rules: Sequence[Mapping[str, Any]]):
        self.bucket_name = bucket_name
        self.rules = list(rules)

    def addresses_bucket(self, request: Request) -> bool:
        host = request.host.split(":")[0]
        path = request.path
        return (
            host.startswith(f"{self.bucket_name}.")
            or path == f"/{self.bucket_name}"
            or path.startswith(f"/{self.bucket_name}/")
        )

    def decorate(self, request: Request, response: Response) -> None:
        """An observer of the AWS stand-in: fix the CORS headers of a response from the bucket (not a preflight)."""
        if request.method == "OPTIONS" or not self.addresses_bucket(request):
            return
        response.headers = Headers([(k, v) for k, v in response.headers if not _is_cors_header(k, v)])
        origin = request.headers.get("origin")
        rule = self._matching_rule(origin, request.method) if origin else None
        if origin and rule is not None:
            response.headers.add("Access-Control-Allow-Origin", "*" if rule["AllowedOrigins"] == ["*"] else origin)
            response.headers.add("Access-Control-Allow-Methods", ", ".join(rule["AllowedMethods"]))
            if rule.get("ExposeHeaders"):
                response.headers.add("Access-Control-Expose-Headers", ", ".join(rule["ExposeHeaders"]))
            if rule.get("MaxAgeSeconds") is not None:
                response.headers.add("Access-Control-Max-Age", str(rule["MaxAgeSeconds"]))
            response.headers.add("Vary", "Origin")

    def _matching_rule(self, origin: str, method: str) -> Mapping[str, Any] | None:
        """The first rule naming the origin and the method, as S3 picks it."""
        for rule in self.rules:
            origins = rule.get("AllowedOrigins") or []
            if method in (rule.get("AllowedMethods") or []) and any(fnmatch.fnmatchcase(origin, o) for o in origins):
                return rule
        return None


def _is_cors_header(name: str, value: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("access-control-") or (lowered == "vary" and value.strip().lower() == "origin")
