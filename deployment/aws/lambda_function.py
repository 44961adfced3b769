"""The AWS Lambda function's handler: ``lambda_function.lambda_handler`` (the image's CMD).

A thin caller of :mod:`maskdetect.aws.handler`, which answers API Gateway HTTP API events for
``POST /predict`` and direct invocations ``{"url": ...}`` / ``{"image": ...}`` exactly as the
service's ``/predict`` does. The model ($MODEL_PATH, else maskdetect.tflite beside this file in
the image) is loaded once per container, during the init phase.
"""

from maskdetect.aws.handler import handler_app

app = handler_app()


def lambda_handler(event, context):
    return app(event, context)
