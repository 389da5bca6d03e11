"""The OpenAPI 3.1 description served at ``/api/openapi.json``.

Limits come from ``serving.http`` and labels from the served model (``serving.contract`` when none is
loaded), so that the document and the checks cannot drift apart; the tests validate the document and
every answer against it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from serving.contract import LABELS
from serving.http import MAX_BATCH, MAX_ID_CHARS, MAX_TEXT_CHARS, NOT_BLANK_PATTERN
from serving.topics import default_matcher

ERROR_CODES = (
    "invalid_json",
    "invalid_body",
    "missing_field",
    "invalid_field",
    "empty_text",
    "text_too_long",
    "empty_batch",
    "batch_too_large",
    "method_not_allowed",
    "not_found",
    "payload_too_large",
    "unsupported_media_type",
    "model_unavailable",
    "explanation_unavailable",
    "over_budget",
    "service_unavailable",
    "ledger_unavailable",
)

_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_CHARS,
    "pattern": NOT_BLANK_PATTERN,
    "description": f"A raw tweet; must not be blank, at most {MAX_TEXT_CHARS} characters.",
    "examples": ["Lost my bag again, thanks a lot @AirParadis"],
}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_LABEL = {"type": "string", "enum": list(LABELS)}
_ID = {"type": "string", "pattern": f"^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$"}

SCHEMAS: dict[str, Any] = {
    "PredictOneRequest": {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": _TEXT,
            "explain": {"type": "boolean", "default": False, "description": "Add the terms that drove it."},
        },
        "not": {"required": ["texts"]},
    },
    "PredictBatchRequest": {
        "type": "object",
        "required": ["texts"],
        "properties": {
            "texts": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": MAX_BATCH},
            "explain": {"type": "boolean", "default": False},
        },
        "not": {"required": ["text"]},
    },
    "Term": {
        "type": "object",
        "required": ["term", "weight"],
        "properties": {
            "term": {"type": "string", "description": "A normalized word or n-gram."},
            "weight": {
                "type": "number",
                "description": "Contribution to the positive logit (< 0: negative).",
            },
        },
    },
    "Prediction": {
        "type": "object",
        "required": ["prediction_id", "label", "negative_probability", "model_version", "topics", "encoder"],
        "properties": {
            "prediction_id": {
                "type": "string",
                "pattern": "^[0-9a-f]{56}$",
                "description": "Signed by the service: send it back with feedback.",
            },
            "label": _LABEL,
            "negative_probability": _PROBABILITY,
            "model_version": {"type": "string"},
            "topics": {
                "type": "array",
                "items": {"type": "string", "enum": list(default_matcher().names)},
                "uniqueItems": True,
                "description": "Airline topics the text mentions (versioned lexicon), sorted; [] when none.",
            },
            "encoder": {
                "type": "string",
                "enum": ["used", "skipped", "not_needed", "off"],
                "description": "Whether the sentence encoder re-read the text: used (the n-gram model "
                "was unsure; the fused probability is the answer), skipped (unsure, but past this request's "
                "quota of encoder texts: the n-gram answer stands; send fewer texts per request), "
                "not_needed (the n-gram model was confident), off (the service runs without the encoder).",
            },
            "ngram_negative_probability": {
                **_PROBABILITY,
                "description": "When encoder is used: the n-gram model's own probability, before fusion.",
            },
            "explanation": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Term"},
                "description": "Present when the request had explain=true; largest |weight| first. Always "
                "the n-gram model's terms (the encoder field says whether the encoder also weighed in).",
            },
        },
    },
    "PredictBatchResponse": {
        "type": "object",
        "required": ["model_version", "predictions"],
        "properties": {
            "model_version": {"type": "string"},
            "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
        },
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["text", "predicted_label", "correct"],
        "properties": {
            "prediction_id": {"anyOf": [_ID, {"type": "null"}]},
            "text": _TEXT,
            "predicted_label": _LABEL,
            "negative_probability": {"anyOf": [_PROBABILITY, {"type": "null"}]},
            "correct": {"type": "boolean"},
        },
    },
    "FeedbackAccepted": {
        "type": "object",
        "required": ["feedback_id", "recorded", "matched_prediction"],
        "properties": {
            "feedback_id": {"type": "string"},
            "recorded": {"const": True},
            "matched_prediction": {
                "type": "boolean",
                "description": "Whether prediction_id was issued by this service and, when predictions "
                "are stored, found among them (the stored label, probability and model version are then "
                "the ones recorded); unmatched feedback is kept but never counts toward the "
                "wrong-prediction alert.",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "model_version", "model_loaded"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "model_version": {"type": ["string", "null"]},
            "model_loaded": {"type": "boolean"},
            "threshold": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "A text is labelled negative when its negative probability is at least this.",
            },
            "labels": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
            "encoder": {
                "type": "string",
                "enum": ["on", "off"],
                "description": "Whether uncertain texts get the sentence encoder's second reading.",
            },
            "reason": {"type": "string", "description": "Why the model is not loaded (503 only)."},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": list(ERROR_CODES)},
                    "message": {"type": "string", "minLength": 1},
                },
            }
        },
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


_METHOD_ERRORS = {"405": _error("Wrong method (the Allow header names the right one).")}
_BODY_ERRORS = {
    "400": _error("Malformed JSON, a missing or wrong field, a blank or too long text, a bad batch size."),
    "413": _error("Body over 1 MiB."),
    "415": _error("A content type other than JSON."),
}
_KEY: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionCode": []}]
_KEY_ERRORS = {
    "401": {"description": "No valid function key: answered by the Functions host in Azure, no body."}
}


def document(labels: Sequence[str] = LABELS) -> dict[str, Any]:
    """A fresh copy of the OpenAPI 3.1 document (callers may mutate it), for a model with ``labels``."""
    schemas = copy.deepcopy(SCHEMAS)
    for schema, field in (("Prediction", "label"), ("FeedbackRequest", "predicted_label")):
        schemas[schema]["properties"][field]["enum"] = list(labels)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Air Paradis tweet sentiment",
            "version": "1.0.0",
            "description": "Scores tweets as negative or positive, explains the score, and records whether "
            "a prediction was right. predict and feedback need a function key in Azure.",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Score one text or a batch",
                    "security": _KEY,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/PredictOneRequest"},
                                        {"$ref": "#/components/schemas/PredictBatchRequest"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction, or (for `texts`) all of them in input order.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Prediction"},
                                            {"$ref": "#/components/schemas/PredictBatchResponse"},
                                        ]
                                    }
                                }
                            },
                        },
                        **_KEY_ERRORS,
                        **_BODY_ERRORS,
                        **_METHOD_ERRORS,
                        "503": _error("The model is not loaded (GET /api/health says why)."),
                    },
                }
            },
            "/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Record whether a prediction was right",
                    "security": _KEY,
                    "requestBody": {"required": True, "content": _json("FeedbackRequest")},
                    "responses": {
                        "202": {
                            "description": "Recorded (durably written first when the ledger is on).",
                            "content": _json("FeedbackAccepted"),
                        },
                        **_KEY_ERRORS,
                        **_BODY_ERRORS,
                        **_METHOD_ERRORS,
                        "503": {
                            "description": "ledger_unavailable: the feedback could not be stored; send it "
                            "again after the Retry-After seconds.",
                            "headers": {
                                "Retry-After": {
                                    "description": "Seconds to wait before sending it again.",
                                    "schema": {"type": "integer", "minimum": 1},
                                }
                            },
                            "content": _json("Error"),
                        },
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and model identity",
                    "security": [],
                    "responses": {
                        "200": {"description": "The model is loaded.", "content": _json("Health")},
                        **_METHOD_ERRORS,
                        "503": {"description": "The model failed to load.", "content": _json("Health")},
                    },
                }
            },
            "/ui": {
                "get": {
                    "operationId": "ui",
                    "summary": "The HTML test page",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The page.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        **_METHOD_ERRORS,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_METHOD_ERRORS,
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionCode": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
