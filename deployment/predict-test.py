#!/usr/bin/env python3
"""POST images to a running maskdetect service and print its answers (for people without Jupyter).

    python deployment/predict-test.py                         # two photos from the dataset, by URL
    python deployment/predict-test.py photo.jpg https://example.com/face.jpg
    python deployment/predict-test.py --url http://127.0.0.1:9696 photo.jpg

Files are uploaded (multipart field "image"); http(s) URLs are sent as JSON {"url": ...} and
fetched by the service. Prints one JSON line per input, the service's answer with "input": its
"label", the most probable of the three probabilities "with_mask", "incorrect" (a mask below the
nose or on the chin) and "without_mask", then "model" and "face"; exits 1 if any failed.
Needs only `requests`.
"""

import argparse
import json
import sys
from pathlib import Path

import requests

# Two photos of the dataset's test split, at the commit the project pins.
EXAMPLES = [
    "https://raw.githubusercontent.com/prajnasb/observations/cdcf4501bf7fdec7ac8a4ee245e343b187fa53c7/experiements/data/with_mask/2-with-mask.jpg",
    "https://raw.githubusercontent.com/prajnasb/observations/cdcf4501bf7fdec7ac8a4ee245e343b187fa53c7/experiements/data/without_mask/12.jpg",
]


def ask(base_url: str, item: str) -> requests.Response:
    if item.startswith(("http://", "https://")):
        return requests.post(f"{base_url}/predict", json={"url": item}, timeout=30)
    with open(item, "rb") as image:
        return requests.post(f"{base_url}/predict", files={"image": (Path(item).name, image)}, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", metavar="FILE_OR_URL", default=EXAMPLES)
    parser.add_argument("--url", default="http://127.0.0.1:9696", help="the service (default %(default)s)")
    args = parser.parse_args()
    base_url = args.url.rstrip("/")
    failed = 0
    for item in args.inputs:
        try:
            response = ask(base_url, item)
        except requests.ConnectionError:
            print(f"predict-test: no service at {base_url}; start it with `make serve`", file=sys.stderr)
            return 2
        except OSError as error:
            failed += 1
            print(f"predict-test: {item}: {error}", file=sys.stderr)
            continue
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": f"HTTP {response.status_code} without JSON"}
        if not response.ok:
            failed += 1
            print(f"predict-test: {item}: HTTP {response.status_code}: {answer.get('error')}", file=sys.stderr)
            continue
        print(json.dumps({"input": item, **answer}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
