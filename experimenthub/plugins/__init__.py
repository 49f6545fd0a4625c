"""Backends behind the hub: tracking (MLflow) and datastreams (in-process, RabbitMQ)."""
