"""AWS Lambda: the handler answering API Gateway HTTP API events through the one inference path."""
