"""The OpenAPI 3.1 description of the service, served at ``GET /openapi.json``.

Written out by hand (the API is five routes) and checked by the tests against the
OpenAPI schema and against the routes the application really has.
"""

from __future__ import annotations

from importlib import metadata

from flask import Flask

from ..core import constants


URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$"


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
    image_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"$ref": "#/components/schemas/UrlRequest"}, {"$ref": "#/components/schemas/ImageRequest"}]},
                "examples": {
                    "url": {"value": {"url": "https://example.com/photo.jpg"}},
                    "image": {"value": {"image": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {**binary, "description": "the image file"}},
                },
                "encoding": {"image": {"contentType": "image/*"}},
            },
            "image/*": {"schema": {**binary, "description": "the image file's bytes"}},
        },
    }
    input_errors = {
        "400": _error("invalid JSON, no url or image, an empty image, or a refused URL"),
        "413": _error(f"the request body is over {body_mb:g} MB"),
        "415": _error("the Content-Type is none of application/json, multipart/form-data, image/*"),
        "422": _error(
            "the bytes (uploaded or fetched) are not a readable image, the image is over the "
            "pixel limit, or the image at the URL is over the size limit"
        ),
        "500": _error("a fault of the service itself (logged)"),
        "502": _error(
            "the URL could not be fetched: no such host, refused connection, TLS failure, an HTTP error status, too many "
            "redirects; or, behind `maskdetect serve`, the worker serving the request stopped (with Retry-After)"
        ),
        "503": {
            **_error("the service is busy: the request waited for a worker longer than the queue budget (MASKDETECT_QUEUE_BUDGET_S)"),
            "headers": {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}},
        },
        "504": _error("the URL's host did not connect or answer in time"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "maskdetect",
            "version": version,
            "summary": "Does the face in a photo wear a mask? Who in a crowd does not?",
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
                        "The largest face found in the photo is classified, cropped as the training crops are "
                        "(`face` is its box in pixels of the image as displayed); the whole photo when no face "
                        "is found (`face` is null) or when the service runs with MASKDETECT_FACE_CENTRED=0. "
                        "The image comes as JSON `{\"url\": ...}` or `{\"image\": \"<base64>\"}`, as a multipart form field `image`, or as "
                        f"the raw body with an `image/*` content type. Request bodies are limited to {body_mb:g} MB. "
                        "A URL must be http or https and resolve to public addresses only (no loopback, "
                        "private, link-local, multicast, reserved or unspecified address, in any notation); "
                        f"at most {limits.max_redirects} redirects are followed, each checked again; the fetch "
                        f"has {limits.connect_timeout:g} s to connect and {limits.total_timeout:g} s in all, and "
                        f"the image may be {limits.max_bytes / 1024 / 1024:g} MB at most. Images over "
                        f"{constants.MAX_IMAGE_PIXELS / 1e6:g} megapixels are refused before decoding."
                    ),
                    "requestBody": image_body,
                    "responses": {
                        "200": {
                            "description": "the answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}},
                        },
                        **input_errors,
                    },
                }
            },
            "/detect": {
                "post": {
                    "operationId": "detect",
                    "summary": "Find every face, label each, count the unmasked and the close pairs",
                    "description": (
                        "The image comes in the same three forms as for `/predict`, under the same limits. Every face "
                        "the detector finds is classified; boxes are `[xmin, ymin, xmax, ymax]` in pixels of the image as "
                        "displayed (EXIF orientation applied). `unmasked_ratio` is the unmasked share of the faces the detector is sure of (`counted`), null "
                        "when no face is found. `close_pairs` lists pairs of unmasked faces (indices into `faces`) "
                        f"estimated closer than {constants.CLOSE_DISTANCE_M:g} m, from a pinhole camera model that "
                        f"assumes every face is {constants.FACE_WIDTH_M * 100:g} cm wide and a "
                        f"{constants.CAMERA_FOV_DEG:g} degree horizontal field of view: rough estimates. "
                        "With `format=png` the answer is the image with the boxes drawn (green with_mask, red "
                        "without_mask, labelled with the face's index and p(with_mask))."
                    ),
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "description": "`json` (default) or `png` (the annotated image)",
                            "schema": {"type": "string", "enum": ["json", "png"], "default": "json"},
                        }
                    ],
                    "requestBody": image_body,
                    "responses": {
                        "200": {
                            "description": "the faces and counts, or the annotated PNG with format=png",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Detection"}},
                                "image/png": {"schema": {**binary, "description": "the annotated image"}},
                            },
                        },
                        **input_errors,
                        "400": _error("an unknown format, invalid JSON, no url or image, an empty image, or a refused URL"),
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
                    "properties": {
                        "url": {
                            "type": "string",
                            "format": "uri",
                            # what maskdetect.core.fetch.parse_url takes: http or https, a host, no user name
                            "pattern": URL_PATTERN,
                            "description": "an http(s) URL of an image, without a user name or password",
                        }
                    },
                },
                "ImageRequest": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "byte",
                            "description": "the image file, base64-encoded (standard alphabet; a data: URL prefix and line breaks are allowed)",
                        }
                    },
                },
                "Prediction": {
                    "type": "object",
                    "required": ["label", "with_mask", "without_mask", "model", "face"],
                    "properties": {
                        "label": {"type": "string", "enum": list(constants.CLASSES)},
                        "with_mask": {"type": "number", "minimum": 0, "maximum": 1, "description": "p(with_mask)"},
                        "without_mask": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 - p(with_mask)"},
                        "model": {"type": "string", "description": "the model's name and version"},
                        "face": {
                            "description": "the face classified, [xmin, ymin, xmax, ymax] in pixels of the image as "
                            "displayed; null when the whole image was classified",
                            "oneOf": [
                                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4},
                                {"type": "null"},
                            ],
                        },
                    },
                    "example": {
                        "label": "with_mask",
                        "with_mask": 0.97,
                        "without_mask": 0.03,
                        "model": "cnn2-1a2b3c4d-seed1",
                        "face": [212, 96, 371, 288],
                    },
                },
                "Detection": {
                    "type": "object",
                    "required": ["faces", "total", "with_mask", "without_mask", "unmasked_ratio", "counted", "close_pairs", "model"],
                    "properties": {
                        "faces": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["box", "score", "label", "with_mask"],
                                "properties": {
                                    "box": {
                                        "type": "array",
                                        "items": {"type": "integer", "minimum": 0},
                                        "minItems": 4,
                                        "maxItems": 4,
                                        "description": "xmin, ymin, xmax, ymax in displayed pixels (max exclusive)",
                                    },
                                    "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "the detector's confidence"},
                                    "label": {"type": "string", "enum": list(constants.CLASSES)},
                                    "with_mask": {"type": "number", "minimum": 0, "maximum": 1, "description": "p(with_mask)"},
                                },
                            },
                        },
                        "total": {"type": "integer", "minimum": 0},
                        "with_mask": {"type": "integer", "minimum": 0},
                        "without_mask": {"type": "integer", "minimum": 0},
                        "unmasked_ratio": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "maximum": 1,
                            "description": f"the share of counted faces without a mask: faces scored at least {constants.SHARE_MIN_SCORE:g} by the detector, or every face when none is",
                        },
                        "counted": {"type": "integer", "minimum": 0, "description": "how many faces unmasked_ratio counts"},
                        "close_pairs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["a", "b", "distance_m"],
                                "properties": {
                                    "a": {"type": "integer", "minimum": 0, "description": "index into faces"},
                                    "b": {"type": "integer", "minimum": 0, "description": "index into faces"},
                                    "distance_m": {"type": "number", "minimum": 0, "description": "estimated distance"},
                                },
                            },
                        },
                        "model": {"type": "string", "description": "the classifier's name and version"},
                    },
                    "example": {
                        "faces": [
                            {"box": [79, 100, 108, 137], "score": 0.9987, "label": "without_mask", "with_mask": 0.03},
                            {"box": [120, 98, 150, 134], "score": 0.9921, "label": "without_mask", "with_mask": 0.11},
                        ],
                        "total": 2,
                        "with_mask": 0,
                        "without_mask": 2,
                        "unmasked_ratio": 1.0,
                        "counted": 2,
                        "close_pairs": [{"a": 0, "b": 1, "distance_m": 0.64}],
                        "model": "cnn2-1a2b3c4d-seed1",
                    },
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
