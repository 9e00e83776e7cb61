"""The OpenAPI schema documents the error answers each operation can give, not only its success.

drf-spectacular documents the 2xx answer of an operation; a client (and the schemathesis run in
``tests/test_api_fuzz.py``) also meets 400, 401, 403, 404, 415 and 503.  ``PortalAutoSchema`` adds them
where they can happen, with the body DRF sends (``portal.api_errors``):

* 400 (validation: field name to messages) where the operation takes a body or query parameters;
* 401 and 403 where the operation needs authentication (the policy, MFA, CSRF for sessions);
* 404 where the path names an object (out of scope is 404 too; under /api/ a malformed id is a
  JSON 404 as well, ``portal.api_errors.not_found``), on paginated lists (a page past the end)
  and where ``?format=`` picks a renderer (an unknown one);
* 415 where the operation takes a body (sent without a content type, or in one it does not read);
* 503 everywhere: the database is restarting or unreachable (``portal.outage``), or, for
  operations that start work, the task queue is down (``portal.task_queue``); with Retry-After.

Codes an operation documents itself (``extend_schema``) are kept as they are.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The error body: a message in ``detail``."""

    detail = serializers.CharField()


VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Field name (or non_field_errors, or detail) to what is wrong with it.",
    "additionalProperties": {},
}

_DESCRIPTIONS = {
    "400": "The request is invalid.",
    "401": "No valid credentials were sent.",
    "403": "The policy, a missing second factor or CSRF refuses the request.",
    "404": "No such object within the caller's scope (or no such page).",
    "415": "The body's media type is missing or is not one the operation reads.",
    "503": "The database or the task queue is unavailable; nothing was changed. Try again later.",
}


class PortalAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        query = [p for p in parameters if p.get("in") == "query"]
        security = operation.get("security", [])
        codes = []
        if operation.get("requestBody") or query:
            codes.append("400")
        if security and {} not in security:
            codes += ["401", "403"]
        if any(p.get("in") == "path" for p in parameters) or any(p.get("name") in ("page", "format") for p in query):
            codes.append("404")
        if operation.get("requestBody"):
            codes.append("415")
        codes.append("503")
        for code in codes:
            responses.setdefault(code, self._error_response(code))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_response(self, code: str) -> dict:
        if code == "400":
            component = ResolvedComponent(
                name="ValidationError",
                type=ResolvedComponent.SCHEMA,
                schema=VALIDATION_ERROR_SCHEMA,
                object="ValidationError",
            )
            self.registry.register_on_missing(component)
            return {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": component.ref}}}
        response = self._get_response_for_code(ErrorSerializer, code)
        response["description"] = _DESCRIPTIONS[code]
        return response
