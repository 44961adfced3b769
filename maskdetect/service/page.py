"""The web page at ``/``: choose a file or paste an image URL, see the image and its answer.

Everything it needs is served from here (no CDN), and a Content-Security-Policy keeps the
page to its own script and style; images may come from anywhere the visitor points at.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("page", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data: http: https:; media-src blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
def index():
    predictor = current_app.extensions["maskdetect.predictor"]
    close_m = current_app.extensions["maskdetect.analyzer"].close_distance_m
    response = current_app.make_response(render_template("index.html", model=predictor.name, close_m=close_m))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
