"""The OpenAPI 3.1 description of the service, served at ``GET /openapi.json``.

Written out by hand (the API is four routes) and checked by the tests against the
OpenAPI schema and against the routes the application really has.
"""

from __future__ import annotations

from importlib import metadata

from flask import Flask

from .. import config


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(app: Flask) -> dict:
    limits = app.config["URL_LIMITS"]
    body_mb = app.config["MAX_CONTENT_LENGTH"] / 1024 / 1024
    try:
        version = metadata.version("maskdetect")
    except metadata.PackageNotFoundError:
        version = "0"
    binary = {"type": "string", "format": "binary"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "maskdetect",
            "version": version,
            "summary": "Does the face in a photo wear a mask?",
            "description": (
                "A Keras classifier (with_mask / without_mask) for photos of one face. "
                "Send the image itself or an http(s) URL of it. Every error answers "
                '`{"error": "..."}` saying what was wrong and what to do.'
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Classify one image",
                    "description": (
                        "The image comes as JSON `{\"url\": ...}`, as a multipart form field `image`, or as "
                        f"the raw body with an `image/*` content type. Request bodies are limited to {body_mb:g} MB. "
                        "A URL must be http or https and resolve to public addresses only (no loopback, "
                        "private, link-local, multicast, reserved or unspecified address, in any notation); "
                        f"at most {limits.max_redirects} redirects are followed, each checked again; the fetch "
                        f"has {limits.connect_timeout:g} s to connect and {limits.total_timeout:g} s in all, and "
                        f"the image may be {limits.max_bytes / 1024 / 1024:g} MB at most. Images over "
                        f"{config.MAX_IMAGE_PIXELS / 1e6:g} megapixels are refused before decoding."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/UrlRequest"},
                                "example": {"url": "https://example.com/photo.jpg"},
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {"image": {**binary, "description": "the image file"}},
                                }
                            },
                            "image/*": {"schema": {**binary, "description": "the image file's bytes"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}},
                        },
                        "400": _error("invalid JSON, no url or image, an empty image, or a refused URL"),
                        "413": _error(f"the request body is over {body_mb:g} MB"),
                        "415": _error("the Content-Type is none of application/json, multipart/form-data, image/*"),
                        "422": _error(
                            "the bytes (uploaded or fetched) are not a readable image, the image is over the "
                            "pixel limit, or the image at the URL is over the size limit"
                        ),
                        "500": _error("a fault of the service itself (logged)"),
                        "502": _error("the URL could not be fetched: no such host, refused connection, TLS failure, an HTTP error status, too many redirects"),
                        "504": _error("the URL's host did not connect or answer in time"),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether the service is up, and which model it serves",
                    "responses": {
                        "200": {
                            "description": "the model is loaded",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
                }
            },
            "/": {
                "get": {
                    "operationId": "page",
                    "summary": "A web page: choose a file or paste an image URL, see the answer",
                    "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                }
            },
        },
        "components": {
            "schemas": {
                "UrlRequest": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": {"type": "string", "format": "uri", "description": "an http(s) URL of an image"}},
                },
                "Prediction": {
                    "type": "object",
                    "required": ["label", "with_mask", "without_mask", "model"],
                    "properties": {
                        "label": {"type": "string", "enum": list(config.CLASSES)},
                        "with_mask": {"type": "number", "minimum": 0, "maximum": 1, "description": "p(with_mask)"},
                        "without_mask": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 - p(with_mask)"},
                        "model": {"type": "string", "description": "the model's name and version"},
                    },
                    "example": {"label": "with_mask", "with_mask": 0.97, "without_mask": 0.03, "model": "cnn2-1a2b3c4d-seed1"},
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "model"],
                    "properties": {"status": {"type": "string", "const": "ok"}, "model": {"type": "string"}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string", "description": "what was wrong and what to do"}},
                    "example": {"error": "refused URL: 127.0.0.1 is a loopback address ..."},
                },
            },
        },
    }
