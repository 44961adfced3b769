"""The seed-style baseline for `make bench`: what the original DataTalks.Club-style project served.

Flask, the Keras `.h5` ($MODEL_PATH) loaded once with `keras.models.load_model`, and per request
the WHOLE photo resized to the model's input and passed to `model.predict`: no face detection, no
limits, no error table. Only for the benchmark (issue 15 compares `/predict` with it in one run):

    MODEL_PATH=deployment/maskdetect.h5 gunicorn -c deployment/gunicorn.conf.py --pythonpath benchmarks seed_app:app
"""

import io
import os

import keras
import numpy as np
from flask import Flask, jsonify, request
from PIL import Image

model = keras.models.load_model(os.environ.get("MODEL_PATH", "deployment/maskdetect.h5"))
_, height, width, _ = model.input_shape  # 100x100 RGB

app = Flask("seed")


@app.get("/health")
def health():
    return jsonify(status="ok", model=f"seed {os.path.basename(os.environ.get('MODEL_PATH', 'maskdetect.h5'))}")


@app.post("/predict")
def predict():
    # A multipart upload (bench.py's field "image"; the seed's "file") or a raw image body.
    upload = next(iter(request.files.values()), None)
    data = upload.read() if upload else request.get_data()
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height))
    x = np.expand_dims(np.asarray(image, dtype=np.float32) / 255.0, 0)
    p = float(model.predict(x, verbose=0)[0][0])  # the slow Keras path, as the seed called it
    return jsonify(with_mask=p, label="with_mask" if p >= 0.5 else "without_mask")
